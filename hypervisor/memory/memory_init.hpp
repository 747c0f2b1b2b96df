// Boot-time memory set-up, called once by kernel_main on the bootstrap processor.
#pragma once

#include "platform/multiboot2.hpp"

namespace godwit::hv {

// Builds the frame allocator from the Multiboot2 memory map.
void memory_init(const Multiboot2Info& info, u64 info_address);

// Extends the boot identity map (first 4 GiB) over all RAM in the map, 2 MiB pages.
void map_all_ram(const Multiboot2Info& info);

} // namespace godwit::hv
