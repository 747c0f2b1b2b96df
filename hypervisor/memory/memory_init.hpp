// Boot-time memory set-up, called once by kernel_main on the bootstrap processor.
#pragma once

#include "platform/multiboot2.hpp"

namespace godwit::hv {

// Builds the frame allocator from the Multiboot2 memory map.
void memory_init(const Multiboot2Info& info, u64 info_address);

// The hypervisor's own memory: `bytes` (a multiple of 2 MiB) of RAM below 4 GiB, as high as
// possible and clear of the image, the boot information and `avoid` (boot modules). From
// then on the frame allocator hands out frames from this pool only; the rest of RAM goes to
// the root partition. Returns the pool's base, or 0 when no RAM region can hold it.
struct MemoryRange {
    u64 base;
    u64 size;
};
u64 memory_reserve_pool(const Multiboot2Info& info, u64 bytes, const MemoryRange* avoid,
                        u32 avoid_count);

// Extends the boot identity map (first 4 GiB) over all RAM in the map, 2 MiB pages.
void map_all_ram(const Multiboot2Info& info);

} // namespace godwit::hv
