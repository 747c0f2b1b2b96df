#include "root/linux_boot.hpp"

namespace godwit::hv::linux_boot {
namespace {

inline constexpr u32 max_input_ranges = 100;

void copy_bytes(void* dst, const void* src, usize n) {
    auto* d = static_cast<u8*>(dst);
    const auto* s = static_cast<const u8*>(src);
    for (usize i = 0; i < n; ++i) {
        d[i] = s[i];
    }
}

void zero_bytes(void* dst, usize n) {
    auto* d = static_cast<u8*>(dst);
    for (usize i = 0; i < n; ++i) {
        d[i] = 0;
    }
}

constexpr bool is_power_of_two(u64 v) {
    return v != 0 && (v & (v - 1)) == 0;
}

} // namespace

const char* to_string(Status status) {
    switch (status) {
    case Status::ok:
        return "ok";
    case Status::too_small:
        return "image too small for a Linux setup header";
    case Status::bad_boot_flag:
        return "no 0xAA55 boot flag: not a bzImage";
    case Status::bad_magic:
        return "no 'HdrS' setup header: not a bzImage";
    case Status::protocol_too_old:
        return "boot protocol older than 2.12 (no 64-bit entry)";
    case Status::no_64bit_entry:
        return "kernel has no 64-bit entry point (XLF_KERNEL_64 clear)";
    case Status::setup_beyond_image:
        return "setup sectors extend beyond the image";
    case Status::too_many_regions:
        return "memory map has too many regions for e820";
    case Status::bad_alignment:
        return "kernel_alignment is not a power of two";
    }
    return "unknown";
}

Status parse_bzimage(const u8* image, u64 size, BzImage& out) {
    constexpr u64 header_offset = 0x1F1;
    if (size < header_offset + sizeof(SetupHeader)) {
        return Status::too_small;
    }
    copy_bytes(&out.header, image + header_offset, sizeof(SetupHeader));
    const SetupHeader& h = out.header;
    if (h.boot_flag != boot_flag_magic) {
        return Status::bad_boot_flag;
    }
    if (h.header != header_magic) {
        return Status::bad_magic;
    }
    if (h.version < min_protocol) {
        return Status::protocol_too_old;
    }
    if ((h.xloadflags & xlf_kernel_64) == 0) {
        return Status::no_64bit_entry;
    }
    // boot.rst: "If this field is 0, the real value is 4."
    u64 setup_sects = h.setup_sects == 0 ? 4 : h.setup_sects;
    out.setup_size = (setup_sects + 1) * 512;
    if (out.setup_size >= size) {
        return Status::setup_beyond_image;
    }
    out.kernel_size = size - out.setup_size;
    u64 alignment = h.kernel_alignment;
    if (!is_power_of_two(alignment)) {
        return Status::bad_alignment;
    }
    // A relocatable kernel may go anywhere aligned; the preferred address is where it runs
    // without relocation (and what the 2.10+ header gives us).
    out.load_address = align_up(h.pref_address != 0 ? h.pref_address : 0x1000000, alignment);
    out.init_size = h.init_size > out.kernel_size ? h.init_size : out.kernel_size;
    out.cmdline_max = h.cmdline_size != 0 ? h.cmdline_size : 255;
    return Status::ok;
}

Status build_e820(const MemoryRange* ram, u32 ram_count, const MemoryRange* carve_out,
                  u32 carve_count, E820Entry* out, u32& out_count) {
    out_count = 0;
    if (ram_count + carve_count > max_input_ranges) {
        return Status::too_many_regions;
    }
    // Every range start and end is a boundary; between two consecutive boundaries the
    // memory type is constant.
    u64 bounds[2 * max_input_ranges];
    u32 nb = 0;
    auto add_bound = [&](u64 v) { bounds[nb++] = v; };
    for (u32 i = 0; i < ram_count; ++i) {
        if (ram[i].size == 0 || ram[i].addr + ram[i].size < ram[i].addr) {
            continue; // empty or wrapping range: ignore
        }
        add_bound(ram[i].addr);
        add_bound(ram[i].addr + ram[i].size);
    }
    for (u32 i = 0; i < carve_count; ++i) {
        if (carve_out[i].size == 0 || carve_out[i].addr + carve_out[i].size < carve_out[i].addr) {
            continue;
        }
        add_bound(carve_out[i].addr);
        add_bound(carve_out[i].addr + carve_out[i].size);
    }
    for (u32 i = 1; i < nb; ++i) { // insertion sort: inputs are small
        u64 v = bounds[i];
        u32 j = i;
        while (j > 0 && bounds[j - 1] > v) {
            bounds[j] = bounds[j - 1];
            --j;
        }
        bounds[j] = v;
    }
    auto covers = [](const MemoryRange& r, u64 start) {
        return r.size != 0 && r.addr <= start && start < r.addr + r.size;
    };
    for (u32 b = 0; b + 1 < nb; ++b) {
        u64 start = bounds[b];
        u64 end = bounds[b + 1];
        if (start == end) {
            continue;
        }
        u32 type = 0;
        for (u32 i = 0; i < ram_count; ++i) {
            if (covers(ram[i], start) && static_cast<u32>(ram[i].type) > type) {
                type = static_cast<u32>(ram[i].type);
            }
        }
        if (type == 0) {
            continue; // a hole in the firmware map stays a hole
        }
        for (u32 i = 0; i < carve_count; ++i) {
            if (covers(carve_out[i], start) && type < static_cast<u32>(E820Type::reserved)) {
                type = static_cast<u32>(E820Type::reserved);
            }
        }
        if (out_count > 0) {
            E820Entry& last = out[out_count - 1];
            if (last.type == type && last.addr + last.size == start) {
                last.size += end - start;
                continue;
            }
        }
        if (out_count == e820_max_entries) {
            out_count = 0;
            return Status::too_many_regions;
        }
        out[out_count++] = E820Entry{start, end - start, type};
    }
    return Status::ok;
}

void fill_boot_params(BootParams& bp, const BzImage& image, const LaunchParams& launch,
                      const E820Entry* e820, u32 e820_count) {
    zero_bytes(&bp, sizeof bp);
    bp.hdr = image.header;
    bp.hdr.type_of_loader = loader_type_undefined;
    bp.hdr.loadflags |= loadflag_loaded_high;
    bp.hdr.code32_start = static_cast<u32>(image.load_address);
    bp.hdr.cmd_line_ptr = static_cast<u32>(launch.cmdline_pa);
    bp.ext_cmd_line_ptr = static_cast<u32>(launch.cmdline_pa >> 32);
    bp.hdr.ramdisk_image = static_cast<u32>(launch.initrd_pa);
    bp.ext_ramdisk_image = static_cast<u32>(launch.initrd_pa >> 32);
    bp.hdr.ramdisk_size = static_cast<u32>(launch.initrd_size);
    bp.ext_ramdisk_size = static_cast<u32>(launch.initrd_size >> 32);
    bp.acpi_rsdp_addr = launch.acpi_rsdp_pa;
    u32 n = e820_count > e820_max_entries ? e820_max_entries : e820_count;
    for (u32 i = 0; i < n; ++i) {
        bp.e820_table[i] = e820[i];
    }
    bp.e820_entries = static_cast<u8>(n);
}

} // namespace godwit::hv::linux_boot
