// The local APIC's interrupt command register (Intel SDM Vol. 3A 11.6.1, Figure 11-12; in
// x2APIC mode one 64-bit MSR, 11.12.9). The root partition's writes to it are trapped so
// that INIT and STARTUP IPIs for its own CPUs never reach them as hardware INITs
// (root/root_startup.hpp). Pure and constexpr.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv::x86 {

// Delivery modes of the ICR, LVT entries, IOAPIC redirection entries and MSIs (3 is
// reserved; ExtINT is not valid in the ICR).
enum class DeliveryMode : u8 {
    fixed = 0,
    lowest_priority = 1,
    smi = 2,
    nmi = 4,
    init = 5,
    startup = 6,
    ext_int = 7,
};
inline constexpr u8 delivery_mode_reserved = 3;

enum class Shorthand : u8 { none = 0, self = 1, all_including_self = 2, all_excluding_self = 3 };

inline constexpr u32 xapic_icr_low = 0x300, xapic_icr_high = 0x310; // MMIO offsets
inline constexpr u32 x2apic_icr_msr = 0x830;
inline constexpr u32 xapic_broadcast = 0xFF, x2apic_broadcast = 0xFFFFFFFF;

struct IcrCommand {
    u8 vector;
    DeliveryMode mode;    // may hold delivery_mode_reserved
    bool logical;         // destination mode (bit 11)
    bool assert_level;    // level (bit 14): 0 = the INIT de-assert of older CPUs
    bool level_triggered; // trigger mode (bit 15)
    Shorthand shorthand;
    u32 destination; // xAPIC: bits 63:56 (ICR high 31:24); x2APIC: bits 63:32
};

// The low half and the destination already taken from the high half.
constexpr IcrCommand decode_icr_low(u32 low, u32 destination) {
    return IcrCommand{
        static_cast<u8>(low & 0xFF),
        static_cast<DeliveryMode>((low >> 8) & 7),
        ((low >> 11) & 1) != 0,
        ((low >> 14) & 1) != 0,
        ((low >> 15) & 1) != 0,
        static_cast<Shorthand>((low >> 18) & 3),
        destination,
    };
}

// `icr` is the whole register: in xAPIC mode ICR high << 32 | ICR low.
constexpr IcrCommand decode_icr(u64 icr, bool x2apic) {
    return decode_icr_low(static_cast<u32>(icr), x2apic ? static_cast<u32>(icr >> 32)
                                                        : static_cast<u32>((icr >> 56) & 0xFF));
}

// The low 32 bits for one physical-destination copy of `low`: vector, delivery mode, level
// and trigger only (no shorthand, physical mode, no reserved bits, which x2APIC refuses with
// #GP): how a trapped INIT or STARTUP IPI is sent to each CPU it is allowed to reach.
constexpr u32 icr_low_for_one_target(u32 low) {
    return low & 0xC7FFu;
}

static_assert(decode_icr(0x0000'0000'0000'4500ull, false).mode == DeliveryMode::init);
static_assert(decode_icr(0x0100'0000'0000'4608ull, false).destination == 1);
static_assert(decode_icr(0x0000'0003'000C'4500ull, true).shorthand ==
              Shorthand::all_excluding_self);
static_assert(decode_icr(0x0000'0003'0000'4500ull, true).destination == 3);
static_assert(icr_low_for_one_target(0xFFFF'FE08) == 0xC608); // shorthand, logical, reserved

} // namespace godwit::hv::x86
