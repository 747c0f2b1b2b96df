#include "platform/multiboot2.hpp"

namespace godwit::hv {
namespace {

u32 read_u32(const u8* p) {
    return u32{p[0]} | (u32{p[1]} << 8) | (u32{p[2]} << 16) | (u32{p[3]} << 24);
}
u64 read_u64(const u8* p) {
    return u64{read_u32(p)} | (u64{read_u32(p + 4)} << 32);
}

// A string inside [p, end) must be NUL-terminated there.
bool terminated(const u8* p, const u8* end) {
    for (; p < end; ++p) {
        if (*p == 0)
            return true;
    }
    return false;
}

enum : u32 {
    tag_end = 0,
    tag_cmdline = 1,
    tag_module = 3,
    tag_mmap = 6,
    tag_acpi_old = 14,
    tag_acpi_new = 15,
};

} // namespace

const char* parse_multiboot2(const u8* info, u64 available, Multiboot2Info& out) {
    if (info == nullptr || available < 16)
        return "boot information is missing or too small";
    u64 total = read_u32(info);
    if (total < 16 || total > available)
        return "boot information total_size is out of range";
    out.total_size = total;
    const u8* end = info + total;
    const u8* p = info + 8;
    bool saw_end = false;
    while (p + 8 <= end) {
        u32 type = read_u32(p);
        u32 size = read_u32(p + 4);
        if (size < 8 || size > static_cast<u64>(end - p))
            return "a tag extends beyond the boot information";
        const u8* body = p + 8;
        const u8* tag_end_ptr = p + size;
        switch (type) {
        case tag_end:
            saw_end = true;
            break;
        case tag_cmdline:
            if (!terminated(body, tag_end_ptr))
                return "command line tag is not NUL-terminated";
            out.cmdline = reinterpret_cast<const char*>(body);
            break;
        case tag_module:
            if (size < 17 || !terminated(body + 8, tag_end_ptr))
                return "malformed module tag";
            if (out.module_count < Multiboot2Info::max_modules) {
                Mb2Module& m = out.modules[out.module_count++];
                m.start = read_u32(body);
                m.end = read_u32(body + 4);
                m.cmdline = reinterpret_cast<const char*>(body + 8);
                if (m.end < m.start)
                    return "module ends before it starts";
            }
            break;
        case tag_mmap: {
            if (size < 16)
                return "malformed memory map tag";
            u32 entry_size = read_u32(body);
            if (entry_size < 24 || entry_size % 8 != 0)
                return "bad memory map entry size";
            for (const u8* e = body + 8; e + entry_size <= tag_end_ptr; e += entry_size) {
                if (out.region_count == Multiboot2Info::max_regions)
                    return "memory map has too many regions";
                out.regions[out.region_count++] = {read_u64(e), read_u64(e + 8), read_u32(e + 16)};
            }
            break;
        }
        case tag_acpi_old:
        case tag_acpi_new:
            // Prefer the ACPI 2.0+ copy when both are present.
            if (out.rsdp_copy == nullptr || type == tag_acpi_new) {
                out.rsdp_copy = body;
                out.rsdp_copy_length = size - 8;
            }
            break;
        default:
            break; // tags we do not need
        }
        if (saw_end)
            break;
        p += (size + 7) & ~7u; // tags are 8-byte aligned
    }
    if (!saw_end)
        return "boot information has no end tag";
    return nullptr;
}

} // namespace godwit::hv
