// What the boot code learned, handed to the rest of the hypervisor.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

struct BootModule {
    PhysAddr start;
    u64 size;
    const char* cmdline;
};

struct BootInfo {
    const char* cmdline; // Multiboot2 command line ("" when none)
    PhysAddr rsdp;       // real RSDP in low memory (0 when not found)
    PhysAddr image_start, image_end;
    u32 module_count;
    BootModule modules[8];
};

const BootInfo& boot_info();

// True when the command line contains `word` as a whole word or as `word=...`.
bool cmdline_has(const char* word);

} // namespace godwit::hv
