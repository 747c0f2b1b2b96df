// Multiboot2 boot information parsing (Multiboot2 specification, section 3.6). Pure and
// bounds-checked: every tag must lie inside the structure's declared total size.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

inline constexpr u32 multiboot2_bootloader_magic = 0x36D76289;

struct Mb2MemoryRegion {
    u64 addr;
    u64 length;
    u32 type; // 1 = available RAM, 3 = ACPI reclaimable, 4 = NVS, 5 = bad
};

struct Mb2Module {
    u32 start, end;      // physical [start, end)
    const char* cmdline; // points into the info structure
};

struct Multiboot2Info {
    u64 total_size = 0;
    const char* cmdline = "";
    static constexpr u32 max_regions = 128;
    Mb2MemoryRegion regions[max_regions];
    u32 region_count = 0;
    static constexpr u32 max_modules = 8;
    Mb2Module modules[max_modules];
    u32 module_count = 0;
    const u8* rsdp_copy = nullptr; // the ACPI tag holds a *copy* of the RSDP
    u32 rsdp_copy_length = 0;
};

// Parses the structure at `info` (`available` bytes are readable there). Returns nullptr on
// success, else a message saying what is malformed.
const char* parse_multiboot2(const u8* info, u64 available, Multiboot2Info& out);

} // namespace godwit::hv
