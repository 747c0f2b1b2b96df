// Physical frame allocator, fed from the Multiboot2 memory map with the hypervisor image,
// the boot modules, the ACPI tables and the first MiB reserved.
//
// Layout (docs/hypervisor-boot.md): the hypervisor runs at a fixed physical address with
// all of RAM identity-mapped in its own page tables, so a physical address is also the
// hypervisor-virtual address of that memory (phys_to_virt is a cast).
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

// One zeroed 4 KiB frame, or PhysAddr{0} when memory is exhausted.
PhysAddr alloc_frame();
// `count` contiguous zeroed frames aligned to `align` bytes (a power of two >= 4096),
// or PhysAddr{0}.
PhysAddr alloc_frames(usize count, u64 align = page_size);
void free_frame(PhysAddr frame);
void free_frames(PhysAddr first, usize count);

struct FrameStats {
    u64 total_frames;
    u64 free_frames;
};
FrameStats frame_stats();

inline void* phys_to_virt(PhysAddr pa) {
    return reinterpret_cast<void*>(pa.value);
}
inline PhysAddr virt_to_phys(const void* va) {
    return PhysAddr{reinterpret_cast<u64>(va)};
}

} // namespace godwit::hv
