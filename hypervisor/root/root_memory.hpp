// What the root partition may touch: every guest-physical address maps 1:1 to the same
// host-physical address (RAM, MMIO, firmware) except the hypervisor's own memory, which is
// absent from the root's EPT so any access to it exits (and is refused). Pure: runs over an
// ept::TableMemory, unit-tested on the host (tests/unit/hypervisor_root).
#pragma once

#include "arch/x86/mtrr.hpp"
#include "ept/ept_table.hpp"
#include "root/linux_boot.hpp"

namespace godwit::hv::root {

struct Range {
    u64 base;
    u64 size;
    constexpr u64 end() const { return base + size; }
};

struct IdentityMapStats {
    u64 pages_1g, pages_2m, pages_4k;
    u64 hidden_bytes; // bytes of [0, top) left unmapped
};

// Maps [0, top) into `ept` with guest-physical == host-physical, read/write/execute, using
// the largest page size up to `largest` that neither straddles an MTRR type change nor
// overlaps a `hidden` range; pages wholly inside a hidden range are left unmapped. Memory
// types are the MTRRs' (EPT and MTRR type encodings agree; Vol. 3C 29.3.7), with the
// guest's PAT honoured on top, as on bare metal. `top` and hidden ranges are 4 KiB aligned.
ept::Status map_identity(ept::EptTable& ept, const MtrrState& mtrrs, u64 top, const Range* hidden,
                         u32 hidden_count, ept::PageSize largest, IdentityMapStats& stats);

// The highest 4 KiB-aligned address a with [a, a + size) inside one `ram` range, ending at
// or below `limit`, and overlapping no `avoid` range; 0 when there is none. Places the
// initramfs high, away from the kernel's decompression area (boot.rst: as high as possible).
u64 place_high(const Range* ram, u32 ram_count, const Range* avoid, u32 avoid_count, u64 size,
               u64 limit);

// True when [gpa, gpa + length) lies inside one RAM entry of the root's e820 map: the
// memory a hypercall may read or write for the root (never MMIO, never hypervisor memory).
// Zero-length and wrapping buffers are refused.
bool buffer_in_ram(const linux_boot::E820Entry* e820, u32 count, u64 gpa, u64 length);

} // namespace godwit::hv::root
