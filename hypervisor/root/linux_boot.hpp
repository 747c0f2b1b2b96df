// Linux x86 boot protocol structures and the pure logic to launch the root partition's
// kernel through the 64-bit entry point: parse a bzImage's setup header, build the e820
// map (RAM minus the hypervisor's own memory), and fill boot_params ("zero page").
// References: Documentation/arch/x86/boot.rst (setup header, protocol 2.12+ for the 64-bit
// entry via xloadflags) and zero-page.rst (boot_params offsets).
//
// Pure: no intrinsics, no allocation; unit-tested on the host (tests/unit/hypervisor_root).
#pragma once

#include "lib/types.hpp"

namespace godwit::hv::linux_boot {

// Setup header, at offset 0x1F1 of both the bzImage and boot_params (boot.rst).
struct [[gnu::packed]] SetupHeader {
    u8 setup_sects;
    u16 root_flags;
    u32 syssize;
    u16 ram_size;
    u16 vid_mode;
    u16 root_dev;
    u16 boot_flag; // 0xAA55
    u16 jump;
    u32 header; // "HdrS"
    u16 version;
    u32 realmode_swtch;
    u16 start_sys_seg;
    u16 kernel_version;
    u8 type_of_loader;
    u8 loadflags;
    u16 setup_move_size;
    u32 code32_start;
    u32 ramdisk_image;
    u32 ramdisk_size;
    u32 bootsect_kludge;
    u16 heap_end_ptr;
    u8 ext_loader_ver;
    u8 ext_loader_type;
    u32 cmd_line_ptr;
    u32 initrd_addr_max;
    u32 kernel_alignment;
    u8 relocatable_kernel;
    u8 min_alignment;
    u16 xloadflags;
    u32 cmdline_size;
    u32 hardware_subarch;
    u64 hardware_subarch_data;
    u32 payload_offset;
    u32 payload_length;
    u64 setup_data;
    u64 pref_address;
    u32 init_size;
    u32 handover_offset;
    u32 kernel_info_offset;
};
static_assert(sizeof(SetupHeader) == 0x26C - 0x1F1);
static_assert(__builtin_offsetof(SetupHeader, boot_flag) == 0x1FE - 0x1F1);
static_assert(__builtin_offsetof(SetupHeader, header) == 0x202 - 0x1F1);
static_assert(__builtin_offsetof(SetupHeader, type_of_loader) == 0x210 - 0x1F1);
static_assert(__builtin_offsetof(SetupHeader, ramdisk_image) == 0x218 - 0x1F1);
static_assert(__builtin_offsetof(SetupHeader, cmd_line_ptr) == 0x228 - 0x1F1);
static_assert(__builtin_offsetof(SetupHeader, xloadflags) == 0x236 - 0x1F1);
static_assert(__builtin_offsetof(SetupHeader, pref_address) == 0x258 - 0x1F1);
static_assert(__builtin_offsetof(SetupHeader, init_size) == 0x260 - 0x1F1);

inline constexpr u32 e820_max_entries = 128;

enum class E820Type : u32 { ram = 1, reserved = 2, acpi = 3, nvs = 4, unusable = 5 };

struct [[gnu::packed]] E820Entry {
    u64 addr;
    u64 size;
    u32 type;
};
static_assert(sizeof(E820Entry) == 20);

// struct boot_params (zero-page.rst); fields Godwit does not fill are padding here.
struct [[gnu::packed]] BootParams {
    u8 screen_info[0x40];
    u8 apm_bios_info[0x14];
    u8 pad1[4];
    u64 tboot_addr;
    u8 ist_info[0x10];
    u64 acpi_rsdp_addr;
    u8 pad2[8];
    u8 hd0_info[0x10];
    u8 hd1_info[0x10];
    u8 sys_desc_table[0x10];
    u8 olpc_ofw_header[0x10];
    u32 ext_ramdisk_image;
    u32 ext_ramdisk_size;
    u32 ext_cmd_line_ptr;
    u8 pad3[0x13C - 0xCC];
    u32 cc_blob_address;
    u8 edid_info[0x80];
    u8 efi_info[0x20];
    u32 alt_mem_k;
    u32 scratch;
    u8 e820_entries;
    u8 eddbuf_entries;
    u8 edd_mbr_sig_buf_entries;
    u8 kbd_status;
    u8 secure_boot;
    u8 pad4[2];
    u8 sentinel;
    u8 pad5[1];
    SetupHeader hdr;
    u8 pad6[0x290 - 0x26C];
    u32 edd_mbr_sig_buffer[16];
    E820Entry e820_table[e820_max_entries];
    u8 pad7[0x1000 - 0xCD0];
};
static_assert(sizeof(BootParams) == 4096);
static_assert(__builtin_offsetof(BootParams, acpi_rsdp_addr) == 0x070);
static_assert(__builtin_offsetof(BootParams, ext_ramdisk_image) == 0x0C0);
static_assert(__builtin_offsetof(BootParams, ext_cmd_line_ptr) == 0x0C8);
static_assert(__builtin_offsetof(BootParams, cc_blob_address) == 0x13C);
static_assert(__builtin_offsetof(BootParams, alt_mem_k) == 0x1E0);
static_assert(__builtin_offsetof(BootParams, e820_entries) == 0x1E8);
static_assert(__builtin_offsetof(BootParams, sentinel) == 0x1EF);
static_assert(__builtin_offsetof(BootParams, hdr) == 0x1F1);
static_assert(__builtin_offsetof(BootParams, edd_mbr_sig_buffer) == 0x290);
static_assert(__builtin_offsetof(BootParams, e820_table) == 0x2D0);

inline constexpr u32 header_magic = 0x53726448; // "HdrS"
inline constexpr u16 boot_flag_magic = 0xAA55;
inline constexpr u16 min_protocol = 0x020C;   // 2.12: xloadflags, 64-bit entry
inline constexpr u16 xlf_kernel_64 = 1u << 0; // has the 64-bit entry at +0x200
inline constexpr u16 xlf_can_be_loaded_above_4g = 1u << 1;
inline constexpr u8 loadflag_loaded_high = 1u << 0;
inline constexpr u8 loadflag_can_use_heap = 1u << 7;
inline constexpr u8 loader_type_undefined = 0xFF; // "no assigned id" (boot.rst)
inline constexpr u64 entry64_offset = 0x200;      // 64-bit entry = load address + 0x200

enum class Status : u8 {
    ok,
    too_small,          // not even a setup header
    bad_boot_flag,      // 0x1FE != 0xAA55
    bad_magic,          // no "HdrS"
    protocol_too_old,   // < 2.12
    no_64bit_entry,     // XLF_KERNEL_64 clear
    setup_beyond_image, // (setup_sects+1)*512 >= image size
    too_many_regions,   // e820 would need more than 128 entries
    bad_alignment,      // kernel_alignment not a power of two
};

const char* to_string(Status status);

// What the hypervisor needs from a bzImage.
struct BzImage {
    SetupHeader header; // copy of the image's setup header
    u64 setup_size;     // bytes before the protected-mode kernel: (setup_sects+1)*512
    u64 kernel_size;    // protected-mode kernel bytes (image size - setup_size)
    u64 load_address;   // where the protected-mode part goes (pref_address, aligned)
    u64 init_size;      // memory the kernel needs at load_address while decompressing
    u32 cmdline_max;    // longest command line the kernel accepts (without NUL)
};

// Validates and parses a bzImage of `size` bytes.
Status parse_bzimage(const u8* image, u64 size, BzImage& out);

// A physical memory range with its e820 type.
struct MemoryRange {
    u64 addr;
    u64 size;
    E820Type type;
};

// Builds the root partition's e820 map from `ram` (the firmware's map, e.g. Multiboot2's;
// any order, may overlap) with every range in `carve_out` (the hypervisor's own memory)
// marked reserved. Output: sorted, non-overlapping, adjacent same-type ranges merged.
// Where ranges overlap, the larger type value wins, as Linux's own e820 sanitizer does
// (so RAM always loses). Carve-outs over holes add nothing. At most 100 input ranges
// in total (too_many_regions otherwise); `out` must hold e820_max_entries.
Status build_e820(const MemoryRange* ram, u32 ram_count, const MemoryRange* carve_out,
                  u32 carve_count, E820Entry* out, u32& out_count);

struct LaunchParams {
    u64 cmdline_pa; // NUL-terminated command line, already in guest memory
    u64 initrd_pa;  // 0 when none
    u64 initrd_size;
    u64 acpi_rsdp_pa; // 0 when unknown
};

// Fills `bp` for the 64-bit boot protocol: zeroes it, copies the image's setup header,
// sets loader type, command line, initrd (with the ext_ high halves) and RSDP, and the
// e820 table.
void fill_boot_params(BootParams& bp, const BzImage& image, const LaunchParams& launch,
                      const E820Entry* e820, u32 e820_count);

} // namespace godwit::hv::linux_boot
