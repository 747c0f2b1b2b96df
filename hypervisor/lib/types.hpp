// Fixed-width integer names and strong address types used across the hypervisor.
// Builds both freestanding and on the host (pure logic is unit-tested there).
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>

namespace godwit::hv {

using u8 = std::uint8_t;
using u16 = std::uint16_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using i32 = std::int32_t;
using i64 = std::int64_t;
using usize = std::size_t;

inline constexpr u64 page_size = 4096;
inline constexpr u64 large_page_size = 2ull << 20; // 2 MiB
inline constexpr u64 huge_page_size = 1ull << 30;  // 1 GiB

// A host-physical address. Strong type so it is never confused with a pointer or a
// guest-physical address.
struct PhysAddr {
    u64 value = 0;
    constexpr bool operator==(const PhysAddr&) const = default;
    constexpr auto operator<=>(const PhysAddr&) const = default;
};

// A guest-physical address (what a partition's EPT translates).
struct GuestPhysAddr {
    u64 value = 0;
    constexpr bool operator==(const GuestPhysAddr&) const = default;
    constexpr auto operator<=>(const GuestPhysAddr&) const = default;
};

constexpr u64 align_down(u64 v, u64 a) {
    return v & ~(a - 1);
}
constexpr u64 align_up(u64 v, u64 a) {
    return (v + a - 1) & ~(a - 1);
}

} // namespace godwit::hv
