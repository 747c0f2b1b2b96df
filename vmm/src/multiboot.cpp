#include "godwit/vmm/multiboot.hpp"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "godwit/error.hpp"
#include "godwit/vmm/guest_memory.hpp"

namespace godwit::vmm {

namespace {

constexpr std::uint64_t ebda_start = 0x9FC00;
constexpr std::uint64_t bios_area_start = 0xE0000;
constexpr std::uint64_t one_mib = 0x100000;
constexpr std::size_t mb1_search_bytes = 8192;  // Multiboot 0.6.96 section 3.1.1
constexpr std::size_t mb2_search_bytes = 32768; // Multiboot2 section 3.1.1

std::uint32_t load32(std::span<const std::uint8_t> b, std::size_t at) {
    std::uint32_t v;
    std::memcpy(&v, b.data() + at, 4);
    return v;
}

[[noreturn]] void bad_image(const std::string& what) {
    throw Error(ErrorCode::invalid_input, "kernel image: " + what);
}

std::optional<std::size_t> find_mb1_header(std::span<const std::uint8_t> image) {
    std::size_t limit = std::min(image.size(), mb1_search_bytes);
    for (std::size_t at = 0; at + 12 <= limit; at += 4) {
        std::uint32_t magic = load32(image, at), flags = load32(image, at + 4),
                      checksum = load32(image, at + 8);
        if (magic == multiboot1_header_magic && magic + flags + checksum == 0) {
            return at;
        }
    }
    return std::nullopt;
}

std::optional<std::size_t> find_mb2_header(std::span<const std::uint8_t> image) {
    std::size_t limit = std::min(image.size(), mb2_search_bytes);
    for (std::size_t at = 0; at + 16 <= limit; at += 8) {
        std::uint32_t magic = load32(image, at), arch = load32(image, at + 4),
                      length = load32(image, at + 8), checksum = load32(image, at + 12);
        if (magic == multiboot2_header_magic && magic + arch + length + checksum == 0) {
            return at;
        }
    }
    return std::nullopt;
}

struct LoadedSegments {
    std::uint64_t start = ~std::uint64_t{0}, end = 0, entry = 0;
};

void check_destination(const GuestMemory& memory, std::uint64_t address, std::uint64_t size) {
    if (size == 0) {
        return;
    }
    if (!memory.contains(address, size)) {
        bad_image(fmt::format("segment {:#x}+{:#x} lies outside the VM's {} MiB of RAM", address,
                              size, memory.ram_size() >> 20));
    }
    if (address < boot_info_end && boot_gdt_address < address + size) {
        bad_image(fmt::format("segment {:#x}+{:#x} overlaps the loader's boot area {:#x}-{:#x}",
                              address, size, boot_gdt_address, boot_info_end));
    }
}

void copy_segment(GuestMemory& memory, std::span<const std::uint8_t> image, std::uint64_t offset,
                  std::uint64_t file_size, std::uint64_t address, std::uint64_t memory_size,
                  LoadedSegments& out) {
    if (file_size > memory_size) {
        bad_image(fmt::format("segment at {:#x} has file size {:#x} > memory size {:#x}", address,
                              file_size, memory_size));
    }
    if (offset > image.size() || file_size > image.size() - offset) {
        bad_image(fmt::format("segment at {:#x} reads past the end of the {}-byte file", address,
                              image.size()));
    }
    check_destination(memory, address, memory_size);
    memory.write(address, std::as_bytes(image.subspan(offset, file_size)));
    memory.fill(address + file_size, memory_size - file_size, std::byte{0});
    if (memory_size != 0) {
        out.start = std::min(out.start, address);
        out.end = std::max(out.end, address + memory_size);
    }
}

template <typename Ehdr, typename Phdr>
LoadedSegments load_elf_class(GuestMemory& memory, std::span<const std::uint8_t> image) {
    if (image.size() < sizeof(Ehdr)) {
        bad_image("truncated ELF header");
    }
    Ehdr eh;
    std::memcpy(&eh, image.data(), sizeof eh);
    if (eh.e_machine != EM_386 && eh.e_machine != EM_X86_64) {
        bad_image(fmt::format("ELF machine {} is not x86", eh.e_machine));
    }
    if (eh.e_phentsize != sizeof(Phdr) || eh.e_phnum == 0) {
        bad_image("ELF file without usable program headers");
    }
    LoadedSegments out;
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        std::uint64_t at = eh.e_phoff + std::uint64_t{i} * sizeof(Phdr);
        if (at > image.size() || image.size() - at < sizeof(Phdr)) {
            bad_image("ELF program headers run past the end of the file");
        }
        Phdr ph;
        std::memcpy(&ph, image.data() + at, sizeof ph);
        if (ph.p_type != PT_LOAD) {
            continue;
        }
        // Multiboot loads at physical addresses (p_paddr), as GRUB does.
        copy_segment(memory, image, ph.p_offset, ph.p_filesz, ph.p_paddr, ph.p_memsz, out);
    }
    if (out.end == 0) {
        bad_image("ELF file has no loadable segment");
    }
    out.entry = eh.e_entry;
    return out;
}

LoadedSegments load_elf(GuestMemory& memory, std::span<const std::uint8_t> image) {
    if (image.size() < EI_NIDENT || std::memcmp(image.data(), ELFMAG, SELFMAG) != 0) {
        bad_image("not an ELF file and no a.out-kludge/address information in the header");
    }
    if (image[EI_DATA] != ELFDATA2LSB) {
        bad_image("ELF file is not little-endian");
    }
    if (image[EI_CLASS] == ELFCLASS32) {
        return load_elf_class<Elf32_Ehdr, Elf32_Phdr>(memory, image);
    }
    if (image[EI_CLASS] == ELFCLASS64) {
        return load_elf_class<Elf64_Ehdr, Elf64_Phdr>(memory, image);
    }
    bad_image("unknown ELF class");
}

// a.out kludge (Multiboot1 flag 16) and the Multiboot2 address tag share this layout.
struct AddressFields {
    std::uint32_t header_addr, load_addr, load_end_addr, bss_end_addr;
};

LoadedSegments load_by_address(GuestMemory& memory, std::span<const std::uint8_t> image,
                               std::size_t header_offset, const AddressFields& a) {
    if (a.load_addr > a.header_addr || a.header_addr - a.load_addr > header_offset) {
        bad_image(fmt::format("header_addr {:#x} / load_addr {:#x} do not match the header at "
                              "file offset {:#x}",
                              a.header_addr, a.load_addr, header_offset));
    }
    std::uint64_t file_offset = header_offset - (a.header_addr - a.load_addr);
    std::uint64_t load_size = a.load_end_addr == 0 ? image.size() - file_offset
                                                   : std::uint64_t{a.load_end_addr} - a.load_addr;
    if (a.load_end_addr != 0 && a.load_end_addr < a.load_addr) {
        bad_image("load_end_addr is below load_addr");
    }
    std::uint64_t memory_size = load_size;
    if (a.bss_end_addr != 0) {
        if (a.bss_end_addr < a.load_addr + load_size) {
            bad_image("bss_end_addr is below the end of the loaded image");
        }
        memory_size = std::uint64_t{a.bss_end_addr} - a.load_addr;
    }
    LoadedSegments out;
    copy_segment(memory, image, file_offset, load_size, a.load_addr, memory_size, out);
    return out;
}

// Places modules page-aligned after the kernel.
std::vector<LoadedGuest::Module> load_modules(GuestMemory& memory, const BootImage& image,
                                              std::uint64_t after) {
    std::vector<LoadedGuest::Module> out;
    std::uint64_t next = (std::max(after, one_mib) + page_size - 1) & ~(page_size - 1);
    for (const BootModule& m : image.modules) {
        if (!memory.contains(next, std::max<std::uint64_t>(m.contents.size(), 1))) {
            throw Error(ErrorCode::invalid_input,
                        fmt::format("module '{}' ({} bytes) does not fit in guest RAM at {:#x}",
                                    m.cmdline, m.contents.size(), next));
        }
        memory.write(next, std::as_bytes(std::span{m.contents}));
        out.push_back({next, next + m.contents.size()});
        next = (next + m.contents.size() + page_size - 1) & ~(page_size - 1);
    }
    return out;
}

// Multiboot entry state (Multiboot 0.6.96 section 3.2, Multiboot2 section 3.3): flat 32-bit
// protected mode, paging off, interrupts off, A20 on.
VcpuState entry_state(GuestMemory& memory, std::uint32_t magic, std::uint64_t info,
                      std::uint64_t entry) {
    if (entry > 0xffff'ffff) {
        throw Error(ErrorCode::unsupported,
                    fmt::format("kernel entry {:#x} is above 4 GiB; Multiboot enters in 32-bit "
                                "mode",
                                entry));
    }
    const std::uint64_t gdt[3] = {0, 0x00CF9A000000FFFF, 0x00CF92000000FFFF};
    memory.write(boot_gdt_address, std::as_bytes(std::span{gdt}));
    VcpuState s = reset_vcpu_state(true);
    s.rdx = 0;
    s.rax = magic;
    s.rbx = info;
    s.rip = entry;
    s.rflags = 0x2;
    // Access rights in VMX format: code = type 0xB (execute/read, accessed) S P D/B G.
    s.cs = {0x08, 0, 0xffff'ffff, 0xc09b};
    s.ds = s.es = s.fs = s.gs = s.ss = {0x10, 0, 0xffff'ffff, 0xc093};
    s.gdtr = {boot_gdt_address, sizeof gdt - 1};
    s.idtr = {0, 0};
    s.cr0 = 0x11; // PE, ET
    s.cr4 = 0;
    s.efer = 0;
    return s;
}

std::uint32_t mem_lower_kib() {
    return static_cast<std::uint32_t>(ebda_start / 1024);
}

std::uint32_t mem_upper_kib(const GuestMemory& memory) {
    // Contiguous RAM from 1 MiB up to the first hole (Multiboot 0.6.96 section 3.3).
    std::uint64_t low_end = memory.ranges().front().end();
    std::uint64_t kib = low_end > one_mib ? (low_end - one_mib) / 1024 : 0;
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(kib, 0xffff'ffff));
}

class InfoWriter {
  public:
    std::size_t size() const { return bytes_.size(); }
    std::uint64_t address() const { return boot_info_address + bytes_.size(); }
    void align(std::size_t a) { bytes_.resize((bytes_.size() + a - 1) / a * a, 0); }
    std::size_t reserve(std::size_t n) {
        std::size_t at = bytes_.size();
        bytes_.resize(at + n, 0);
        return at;
    }
    void u32(std::uint32_t v) { put(&v, 4); }
    void u64(std::uint64_t v) { put(&v, 8); }
    void string(const std::string& s) { put(s.c_str(), s.size() + 1); }
    void bytes(std::span<const std::uint8_t> b) { put(b.data(), b.size()); }
    void patch32(std::size_t at, std::uint32_t v) { std::memcpy(&bytes_[at], &v, 4); }
    void install(GuestMemory& memory) const {
        if (boot_info_address + bytes_.size() > boot_info_end) {
            throw Error(ErrorCode::invalid_input,
                        fmt::format("boot information needs {} bytes, more than the {} below "
                                    "{:#x} (command lines or modules too many/long)",
                                    bytes_.size(), boot_info_end - boot_info_address,
                                    boot_info_end));
        }
        memory.write(boot_info_address, std::as_bytes(std::span{bytes_}));
    }

  private:
    void put(const void* p, std::size_t n) {
        auto b = static_cast<const std::uint8_t*>(p);
        bytes_.insert(bytes_.end(), b, b + n);
    }
    std::vector<std::uint8_t> bytes_;
};

constexpr char loader_name[] = "Godwit VMM";

} // namespace

std::string_view to_string(KernelFormat format) {
    switch (format) {
    case KernelFormat::multiboot1:
        return "multiboot1";
    case KernelFormat::multiboot2:
        return "multiboot2";
    default:
        return "unknown";
    }
}

KernelFormat detect_kernel_format(std::span<const std::uint8_t> image) {
    if (find_mb2_header(image)) {
        return KernelFormat::multiboot2;
    }
    if (find_mb1_header(image)) {
        return KernelFormat::multiboot1;
    }
    return KernelFormat::unknown;
}

std::vector<MemoryMapEntry> memory_map(const GuestMemory& memory) {
    std::vector<MemoryMapEntry> map;
    const RamRange& low = memory.ranges().front();
    map.push_back({0, std::min(low.end(), ebda_start), 1});
    map.push_back({ebda_start, 0xA0000 - ebda_start, 2});
    map.push_back({bios_area_start, one_mib - bios_area_start, 2});
    if (low.end() > one_mib) {
        map.push_back({one_mib, low.end() - one_mib, 1});
    }
    for (std::size_t i = 1; i < memory.ranges().size(); ++i) {
        map.push_back({memory.ranges()[i].guest_base, memory.ranges()[i].size, 1});
    }
    return map;
}

LoadedGuest load_multiboot1(GuestMemory& memory, const BootImage& image) {
    auto header = find_mb1_header(image.kernel);
    if (!header) {
        bad_image("no Multiboot1 header (magic 0x1BADB002 with a valid checksum) in the first "
                  "8 KiB");
    }
    if (memory.ranges().front().end() < 2 * one_mib) {
        throw Error(ErrorCode::invalid_input, "a Multiboot guest needs at least 2 MiB of RAM");
    }
    std::uint32_t flags = load32(image.kernel, *header + 4);
    // Bits 0-15 are requirements (section 3.1.2): 0 page-align modules (always done),
    // 1 memory information (always given); 2 asks for a video mode this VMM cannot set.
    if (flags & 0xfffc) {
        throw Error(ErrorCode::unsupported,
                    fmt::format("Multiboot1 header requires features {:#x} (only page-aligned "
                                "modules and memory information are provided)",
                                flags & 0xfffc));
    }
    LoadedSegments segments;
    if (flags & (1u << 16)) {
        if (*header + 32 > image.kernel.size()) {
            bad_image("Multiboot1 header with address fields is truncated");
        }
        AddressFields a{load32(image.kernel, *header + 12), load32(image.kernel, *header + 16),
                        load32(image.kernel, *header + 20), load32(image.kernel, *header + 24)};
        segments = load_by_address(memory, image.kernel, *header, a);
        segments.entry = load32(image.kernel, *header + 28);
    } else {
        segments = load_elf(memory, image.kernel);
    }

    LoadedGuest out;
    out.kernel_start = segments.start;
    out.kernel_end = segments.end;
    out.modules = load_modules(memory, image, segments.end);

    // Info struct (section 3.3), then memory map, module list and strings after it.
    InfoWriter w;
    std::size_t info = w.reserve(120);
    std::uint32_t info_flags = (1u << 0) | (1u << 2) | (1u << 6) | (1u << 9);
    w.patch32(info + 4, mem_lower_kib());
    w.patch32(info + 8, mem_upper_kib(memory));
    w.align(8);
    std::uint64_t mmap_address = w.address();
    for (const MemoryMapEntry& e : memory_map(memory)) {
        w.u32(20); // size of the rest of this entry
        w.u64(e.address);
        w.u64(e.length);
        w.u32(e.type);
    }
    w.patch32(info + 44, static_cast<std::uint32_t>(w.address() - mmap_address));
    w.patch32(info + 48, static_cast<std::uint32_t>(mmap_address));
    std::size_t module_list = 0;
    if (!out.modules.empty()) {
        info_flags |= 1u << 3;
        w.align(16);
        w.patch32(info + 20, static_cast<std::uint32_t>(out.modules.size()));
        w.patch32(info + 24, static_cast<std::uint32_t>(w.address()));
        module_list = w.reserve(16 * out.modules.size());
    }
    w.patch32(info + 16, static_cast<std::uint32_t>(w.address()));
    w.string(image.cmdline);
    w.patch32(info + 64, static_cast<std::uint32_t>(w.address()));
    w.string(loader_name);
    for (std::size_t i = 0; i < out.modules.size(); ++i) {
        std::size_t entry = module_list + 16 * i;
        w.patch32(entry + 0, static_cast<std::uint32_t>(out.modules[i].start));
        w.patch32(entry + 4, static_cast<std::uint32_t>(out.modules[i].end));
        w.patch32(entry + 8, static_cast<std::uint32_t>(w.address()));
        w.string(image.modules[i].cmdline);
    }
    w.patch32(info + 0, info_flags);
    w.install(memory);

    out.info_address = boot_info_address;
    out.bsp = entry_state(memory, multiboot1_boot_magic, boot_info_address, segments.entry);
    return out;
}

LoadedGuest load_multiboot2(GuestMemory& memory, const BootImage& image) {
    auto header = find_mb2_header(image.kernel);
    if (!header) {
        bad_image("no Multiboot2 header (magic 0xE85250D6 with a valid checksum) in the first "
                  "32 KiB");
    }
    if (memory.ranges().front().end() < 2 * one_mib) {
        throw Error(ErrorCode::invalid_input, "a Multiboot guest needs at least 2 MiB of RAM");
    }
    std::span<const std::uint8_t> k = image.kernel;
    std::uint32_t arch = load32(k, *header + 4), header_length = load32(k, *header + 8);
    if (arch != 0) {
        throw Error(ErrorCode::unsupported,
                    fmt::format("Multiboot2 architecture {} (only 0, i386, is supported)", arch));
    }
    if (header_length < 24 || header_length > k.size() - *header) {
        bad_image(fmt::format("Multiboot2 header length {} is invalid", header_length));
    }
    std::optional<AddressFields> address;
    std::optional<std::uint32_t> entry;
    // Header tags (Multiboot2 section 3.1.3 and on): u16 type, u16 flags, u32 size, 8-aligned.
    std::size_t at = *header + 16, end = *header + header_length;
    for (;;) {
        if (at + 8 > end) {
            bad_image("Multiboot2 header tags run past header_length without an end tag");
        }
        std::uint16_t type = static_cast<std::uint16_t>(k[at] | (k[at + 1] << 8));
        bool optional = k[at + 2] & 1;
        std::uint32_t size = load32(k, at + 4);
        if (size < 8 || size > end - at) {
            bad_image(fmt::format("Multiboot2 header tag {} has bad size {}", type, size));
        }
        if (type == 0) {
            break;
        }
        switch (type) {
        case 1: // information request: every requested tag must be one we provide
            for (std::size_t r = at + 8; r + 4 <= at + size; r += 4) {
                std::uint32_t wanted = load32(k, r);
                bool provided = wanted == 1 || wanted == 2 || wanted == 3 || wanted == 4 ||
                                wanted == 6 || wanted == 14 || wanted == 0;
                if (!provided && !optional) {
                    throw Error(ErrorCode::unsupported,
                                fmt::format("Multiboot2 kernel requires boot information tag "
                                            "{}, which this VMM does not provide",
                                            wanted));
                }
            }
            break;
        case 2:
            if (size < 24) {
                bad_image("Multiboot2 address tag is too short");
            }
            address = AddressFields{load32(k, at + 8), load32(k, at + 12), load32(k, at + 16),
                                    load32(k, at + 20)};
            break;
        case 3:
            if (size < 12) {
                bad_image("Multiboot2 entry address tag is too short");
            }
            entry = load32(k, at + 8);
            break;
        case 4:  // console flags: no console requirement can be met beyond COM1
        case 6:  // module alignment: modules are always page-aligned
        case 10: // relocatable: loaded at the preferred address
            break;
        default:
            if (!optional) {
                throw Error(ErrorCode::unsupported,
                            fmt::format("Multiboot2 header tag {} is required but not supported "
                                        "(framebuffer/EFI)",
                                        type));
            }
            break;
        }
        at += (size + 7) & ~std::size_t{7};
    }

    LoadedSegments segments =
        address ? load_by_address(memory, k, *header, *address) : load_elf(memory, k);
    if (entry) {
        segments.entry = *entry;
    } else if (address) {
        bad_image("Multiboot2 address tag without an entry address tag");
    }

    LoadedGuest out;
    out.kernel_start = segments.start;
    out.kernel_end = segments.end;
    out.modules = load_modules(memory, image, segments.end);

    // Boot information (section 3.6): u32 total_size, u32 reserved, 8-aligned tags.
    InfoWriter w;
    w.u32(0);
    w.u32(0);
    auto tag = [&](std::uint32_t type, auto&& body) {
        w.align(8);
        std::size_t start = w.size();
        w.u32(type);
        w.u32(0);
        body();
        w.patch32(start + 4, static_cast<std::uint32_t>(w.size() - start));
    };
    tag(1, [&] { w.string(image.cmdline); });
    tag(2, [&] { w.string(loader_name); });
    for (std::size_t i = 0; i < out.modules.size(); ++i) {
        tag(3, [&] {
            w.u32(static_cast<std::uint32_t>(out.modules[i].start));
            w.u32(static_cast<std::uint32_t>(out.modules[i].end));
            w.string(image.modules[i].cmdline);
        });
    }
    tag(4, [&] {
        w.u32(mem_lower_kib());
        w.u32(mem_upper_kib(memory));
    });
    tag(6, [&] {
        w.u32(24); // entry size
        w.u32(0);  // entry version
        for (const MemoryMapEntry& e : memory_map(memory)) {
            w.u64(e.address);
            w.u64(e.length);
            w.u32(e.type);
            w.u32(0);
        }
    });
    if (!image.acpi_rsdp.empty()) {
        tag(14, [&] { w.bytes(image.acpi_rsdp); });
    }
    tag(0, [] {});
    w.patch32(0, static_cast<std::uint32_t>(w.size()));
    w.install(memory);

    out.info_address = boot_info_address;
    out.bsp = entry_state(memory, multiboot2_boot_magic, boot_info_address, segments.entry);
    return out;
}

LoadedGuest load_kernel(GuestMemory& memory, const BootImage& image) {
    switch (detect_kernel_format(image.kernel)) {
    case KernelFormat::multiboot1:
        return load_multiboot1(memory, image);
    case KernelFormat::multiboot2:
        return load_multiboot2(memory, image);
    default:
        throw Error(ErrorCode::unsupported,
                    "kernel image is neither Multiboot1 nor Multiboot2 (no header found)");
    }
}

} // namespace godwit::vmm
