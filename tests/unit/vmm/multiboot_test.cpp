#include "godwit/vmm/multiboot.hpp"

#include <elf.h>

#include <cstring>
#include <map>

#include "godwit/vmm/guest_memory.hpp"
#include "test_support.hpp"

using namespace godwit::vmm;
using godwit::ErrorCode;

namespace {
const std::string kernel_dir = GODWIT_TEST_KERNEL_DIR;
const std::string guest_dir = GODWIT_GUEST_DIR;

std::string read_string(const GuestMemory& m, std::uint64_t a) {
    std::string s;
    for (char c; (c = static_cast<char>(m.read_value<std::uint8_t>(a))) != 0; ++a) {
        s.push_back(c);
    }
    return s;
}

void expect_multiboot_entry_state(const VcpuState& s) {
    EXPECT_EQ(s.cr0 & 0x80000001, 1u);   // PE on, PG off
    EXPECT_EQ(s.rflags & (1u << 9), 0u); // IF off
    EXPECT_EQ(s.cs.base, 0u);
    EXPECT_EQ(s.cs.limit, 0xffffffffu);
    EXPECT_EQ(s.cs.access_rights & 0x0f, 0xbu);           // execute/read code
    EXPECT_EQ(s.cs.access_rights & (1u << 14), 1u << 14); // 32-bit
    for (const SegmentRegister* d : {&s.ds, &s.es, &s.fs, &s.gs, &s.ss}) {
        EXPECT_EQ(d->base, 0u);
        EXPECT_EQ(d->limit, 0xffffffffu);
        EXPECT_EQ(d->access_rights & 0x0f, 0x3u); // read/write data
    }
    EXPECT_EQ(s.efer, 0u);
    EXPECT_EQ(s.activity, ActivityState::active);
}

BootImage image_with_modules(const std::vector<std::uint8_t>& kernel) {
    BootImage image{kernel, "console=ttyS0 dirty_mb=8", {}, {}};
    image.modules.push_back({std::vector<std::uint8_t>(5000, 0x11), "first module"});
    image.modules.push_back({std::vector<std::uint8_t>{1, 2, 3}, "second"});
    return image;
}
} // namespace

TEST(Multiboot1, LoadsTheHelloGuestElfWithInfoStruct) {
    auto kernel = read_test_file(guest_dir + "/hello.elf");
    ASSERT_EQ(detect_kernel_format(kernel), KernelFormat::multiboot1);
    GuestMemory m(64 << 20);
    LoadedGuest g = load_multiboot1(m, image_with_modules(kernel));

    // Kernel bytes: the first PT_LOAD segment is in guest memory at its p_paddr.
    Elf32_Ehdr eh;
    std::memcpy(&eh, kernel.data(), sizeof eh);
    Elf32_Phdr ph;
    std::memcpy(&ph, kernel.data() + eh.e_phoff, sizeof ph);
    ASSERT_EQ(ph.p_type, static_cast<unsigned>(PT_LOAD));
    std::vector<std::uint8_t> loaded(ph.p_filesz);
    m.read(ph.p_paddr, std::as_writable_bytes(std::span{loaded}));
    EXPECT_TRUE(std::equal(loaded.begin(), loaded.end(), kernel.begin() + ph.p_offset));
    EXPECT_EQ(g.kernel_start, 0x100000u);

    expect_multiboot_entry_state(g.bsp);
    EXPECT_EQ(g.bsp.rax, multiboot1_boot_magic);
    EXPECT_EQ(g.bsp.rbx, g.info_address);
    EXPECT_EQ(g.bsp.rip, eh.e_entry);

    const std::uint64_t info = g.info_address;
    std::uint32_t flags = m.read_value<std::uint32_t>(info);
    EXPECT_EQ(flags & 0x4f, 0x4du); // mem, cmdline, mods, mmap; no boot device (bit 1)
    EXPECT_EQ(m.read_value<std::uint32_t>(info + 4), 639u);
    EXPECT_EQ(m.read_value<std::uint32_t>(info + 8), (64u << 10) - 1024);
    EXPECT_EQ(read_string(m, m.read_value<std::uint32_t>(info + 16)), "console=ttyS0 dirty_mb=8");
    EXPECT_EQ(read_string(m, m.read_value<std::uint32_t>(info + 64)), "Godwit VMM");

    ASSERT_EQ(m.read_value<std::uint32_t>(info + 20), 2u);
    std::uint32_t mods = m.read_value<std::uint32_t>(info + 24);
    std::uint32_t start0 = m.read_value<std::uint32_t>(mods),
                  end0 = m.read_value<std::uint32_t>(mods + 4);
    std::uint32_t start1 = m.read_value<std::uint32_t>(mods + 16);
    EXPECT_EQ(start0 % 4096, 0u);
    EXPECT_GE(start0, g.kernel_end);
    EXPECT_EQ(end0 - start0, 5000u);
    EXPECT_EQ(start1 % 4096, 0u);
    EXPECT_GE(start1, end0);
    EXPECT_EQ(m.read_value<std::uint8_t>(start0 + 4999), 0x11);
    EXPECT_EQ(m.read_value<std::uint8_t>(start1 + 2), 3);
    EXPECT_EQ(read_string(m, m.read_value<std::uint32_t>(mods + 8)), "first module");
    EXPECT_EQ(read_string(m, m.read_value<std::uint32_t>(mods + 24)), "second");

    // Memory map: size-prefixed entries; available RAM adds up to the VM's RAM minus holes.
    std::uint32_t mmap_length = m.read_value<std::uint32_t>(info + 44);
    std::uint32_t mmap = m.read_value<std::uint32_t>(info + 48);
    std::uint64_t available = 0;
    int entries = 0;
    for (std::uint32_t p = mmap; p < mmap + mmap_length; p += m.read_value<std::uint32_t>(p) + 4) {
        ++entries;
        if (m.read_value<std::uint32_t>(p + 20) == 1) {
            available += m.read_value<std::uint64_t>(p + 12);
        }
    }
    EXPECT_EQ(entries, 4);
    EXPECT_EQ(available, 0x9FC00u + (64u << 20) - 0x100000u);
}

TEST(Multiboot1, LoadsAnAoutKludgeBinaryByItsHeaderAddresses) {
    auto kernel = read_test_file(kernel_dir + "/mb1_aout.bin");
    ASSERT_EQ(detect_kernel_format(kernel), KernelFormat::multiboot1);
    GuestMemory m(8 << 20);
    m.fill(0x100000, 0x10000, std::byte{0xaa}); // the loader must zero the bss
    LoadedGuest g = load_kernel(m, {kernel, "", {}, {}});
    EXPECT_EQ(g.kernel_start, 0x100000u);
    std::vector<std::uint8_t> loaded(kernel.size());
    m.read(0x100000, std::as_writable_bytes(std::span{loaded}));
    EXPECT_EQ(loaded, kernel);
    EXPECT_EQ(g.kernel_end - g.kernel_start, kernel.size() + 8192);
    EXPECT_EQ(m.read_value<std::uint8_t>(g.kernel_end - 1), 0);
    EXPECT_EQ(m.read_value<std::uint8_t>(g.kernel_end), 0xaa);
    // entry_addr from the header: right after the 32-byte header, 16-byte text alignment.
    std::uint32_t entry;
    std::memcpy(&entry, kernel.data() + 28, 4);
    EXPECT_EQ(g.bsp.rip, entry);
    EXPECT_EQ(g.bsp.rax, multiboot1_boot_magic);
    expect_multiboot_entry_state(g.bsp);
}

TEST(Multiboot2, LoadsAnElfKernelWithInfoTags) {
    auto kernel = read_test_file(kernel_dir + "/mb2_kernel.elf");
    ASSERT_EQ(detect_kernel_format(kernel), KernelFormat::multiboot2);
    GuestMemory m(32 << 20);
    BootImage image = image_with_modules(kernel);
    image.acpi_rsdp = {'R', 'S', 'D', ' ', 'P', 'T', 'R', ' '};
    LoadedGuest g = load_kernel(m, image);
    expect_multiboot_entry_state(g.bsp);
    EXPECT_EQ(g.bsp.rax, multiboot2_boot_magic);
    EXPECT_EQ(g.bsp.rbx, g.info_address);
    EXPECT_EQ(g.info_address % 8, 0u);

    std::uint32_t total = m.read_value<std::uint32_t>(g.info_address);
    std::map<std::uint32_t, int> seen;
    std::vector<std::string> module_strings;
    std::uint64_t tag = g.info_address + 8;
    std::uint32_t last_type = ~0u;
    while (tag < g.info_address + total) {
        EXPECT_EQ(tag % 8, 0u);
        std::uint32_t type = m.read_value<std::uint32_t>(tag),
                      size = m.read_value<std::uint32_t>(tag + 4);
        ++seen[type];
        last_type = type;
        switch (type) {
        case 1:
            EXPECT_EQ(read_string(m, tag + 8), "console=ttyS0 dirty_mb=8");
            break;
        case 3:
            EXPECT_EQ(m.read_value<std::uint32_t>(tag + 8) % 4096, 0u);
            module_strings.push_back(read_string(m, tag + 16));
            break;
        case 4:
            EXPECT_EQ(m.read_value<std::uint32_t>(tag + 8), 639u);
            EXPECT_EQ(m.read_value<std::uint32_t>(tag + 12), (32u << 10) - 1024);
            break;
        case 6:
            EXPECT_EQ(m.read_value<std::uint32_t>(tag + 8), 24u); // entry size
            EXPECT_EQ((size - 16) % 24, 0u);
            EXPECT_EQ((size - 16) / 24, 4u);
            break;
        case 14:
            EXPECT_EQ(size, 16u);
            break;
        default:
            break;
        }
        tag += (size + 7) & ~7u;
    }
    EXPECT_EQ(tag, g.info_address + ((total + 7) & ~7u));
    EXPECT_EQ(last_type, 0u);
    EXPECT_EQ(seen[1], 1);
    EXPECT_EQ(seen[3], 2);
    EXPECT_EQ(seen[4], 1);
    EXPECT_EQ(seen[6], 1);
    EXPECT_EQ(seen[14], 1);
    EXPECT_EQ(module_strings, (std::vector<std::string>{"first module", "second"}));
}

namespace {
// A Multiboot1 header (at offset 0) followed by nothing loadable.
std::vector<std::uint8_t> mb1_header_only(std::uint32_t flags) {
    std::vector<std::uint8_t> image(64, 0);
    std::uint32_t words[3] = {multiboot1_header_magic, flags, -(multiboot1_header_magic + flags)};
    std::memcpy(image.data(), words, sizeof words);
    return image;
}

// A minimal ELF32 with one PT_LOAD at paddr and a Multiboot1 header in its data.
std::vector<std::uint8_t> elf_with_segment(std::uint32_t paddr) {
    std::vector<std::uint8_t> f(0x200, 0);
    Elf32_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS32;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_machine = EM_386;
    eh.e_entry = paddr;
    eh.e_phoff = sizeof eh;
    eh.e_phentsize = sizeof(Elf32_Phdr);
    eh.e_phnum = 1;
    Elf32_Phdr ph{};
    ph.p_type = PT_LOAD;
    ph.p_offset = 0x100;
    ph.p_paddr = paddr;
    ph.p_filesz = 0x100;
    ph.p_memsz = 0x1000;
    std::memcpy(f.data(), &eh, sizeof eh);
    std::memcpy(f.data() + sizeof eh, &ph, sizeof ph);
    auto header = mb1_header_only(0);
    std::memcpy(f.data() + 0x100, header.data(), 12);
    return f;
}
} // namespace

TEST(Multiboot, RefusesWhatItCannotLoad) {
    GuestMemory m(16 << 20);
    std::vector<std::uint8_t> random(4096, 0x5c);
    EXPECT_EQ(detect_kernel_format(random), KernelFormat::unknown);
    expect_error(ErrorCode::unsupported, "neither Multiboot1 nor Multiboot2", [&] {
        load_kernel(m, {random, "", {}, {}});
    });
    auto video = mb1_header_only(0x4);
    expect_error(ErrorCode::unsupported, "requires features 0x4", [&] {
        load_multiboot1(m, {video, "", {}, {}});
    });
    auto not_elf = mb1_header_only(0x3);
    expect_error(ErrorCode::invalid_input, "not an ELF file", [&] {
        load_multiboot1(m, {not_elf, "", {}, {}});
    });
    auto outside = elf_with_segment(0x4000'0000);
    expect_error(ErrorCode::invalid_input, "outside the VM's 16 MiB", [&] {
        load_multiboot1(m, {outside, "", {}, {}});
    });
    auto over_boot_area = elf_with_segment(0x9000);
    expect_error(ErrorCode::invalid_input, "boot area", [&] {
        load_multiboot1(m, {over_boot_area, "", {}, {}});
    });
    auto fits = elf_with_segment(0x200000);
    LoadedGuest g = load_multiboot1(m, {fits, "", {}, {}});
    EXPECT_EQ(g.bsp.rip, 0x200000u);
    auto truncated = elf_with_segment(0x200000);
    truncated.resize(0x180);
    expect_error(ErrorCode::invalid_input, "past the end", [&] {
        load_multiboot1(m, {truncated, "", {}, {}});
    });
    GuestMemory tiny(1 << 20);
    expect_error(ErrorCode::invalid_input, "at least 2 MiB", [&] {
        load_multiboot1(tiny, {fits, "", {}, {}});
    });
    std::string huge_cmdline(0x100000, 'x');
    expect_error(ErrorCode::invalid_input, "boot information needs", [&] {
        load_multiboot1(m, {fits, huge_cmdline, {}, {}});
    });
}

namespace {
// Multiboot2 flat image: header with an address tag, an entry tag, optional extra tag.
std::vector<std::uint8_t> mb2_flat_image(const std::vector<std::uint32_t>& extra_tag) {
    std::vector<std::uint32_t> w = {multiboot2_header_magic, 0, 0, 0};
    // address tag: type 2, flags 0, size 24; header at 0x200000 = load_addr, whole file,
    // bss up to 0x203000.
    w.insert(w.end(), {2, 24, 0x200000, 0x200000, 0, 0x203000});
    w.insert(w.end(), {3, 12, 0x200100, 0}); // entry tag (+4 bytes padding to 8)
    w.insert(w.end(), extra_tag.begin(), extra_tag.end());
    w.insert(w.end(), {0, 8}); // end tag
    std::uint32_t length = static_cast<std::uint32_t>(w.size() * 4);
    w[2] = length;
    w[3] = -(multiboot2_header_magic + 0 + length);
    w.resize(0x400 / 4, 0x90909090); // some "code" after the header
    std::vector<std::uint8_t> image(w.size() * 4);
    std::memcpy(image.data(), w.data(), image.size());
    return image;
}
} // namespace

TEST(Multiboot2, AddressAndEntryTagsLoadAFlatImage) {
    auto image = mb2_flat_image({});
    ASSERT_EQ(detect_kernel_format(image), KernelFormat::multiboot2);
    GuestMemory m(8 << 20);
    m.fill(0x200000, 0x4000, std::byte{0xaa});
    LoadedGuest g = load_multiboot2(m, {image, "", {}, {}});
    EXPECT_EQ(g.bsp.rip, 0x200100u);
    EXPECT_EQ(g.kernel_start, 0x200000u);
    EXPECT_EQ(g.kernel_end, 0x203000u);
    EXPECT_EQ(m.read_value<std::uint32_t>(0x200000), multiboot2_header_magic);
    EXPECT_EQ(m.read_value<std::uint32_t>(0x2003fc), 0x90909090u);
    EXPECT_EQ(m.read_value<std::uint8_t>(0x202fff), 0); // bss zeroed
    EXPECT_EQ(m.read_value<std::uint8_t>(0x203000), 0xaa);
}

TEST(Multiboot2, RefusesRequiredFeaturesItLacks) {
    GuestMemory m(8 << 20);
    // Framebuffer tag (type 5), required: no graphics in a Godwit VM.
    auto framebuffer = mb2_flat_image({5, 20, 1024, 768, 32, 0});
    expect_error(ErrorCode::unsupported, "tag 5 is required", [&] {
        load_multiboot2(m, {framebuffer, "", {}, {}});
    });
    // The same tag marked optional (flags bit 0) is fine.
    auto optional_framebuffer = mb2_flat_image({5 | (1u << 16), 20, 1024, 768, 32, 0});
    EXPECT_EQ(load_multiboot2(m, {optional_framebuffer, "", {}, {}}).bsp.rip, 0x200100u);
    // Required information request for the framebuffer info tag (8).
    auto wants_framebuffer_info = mb2_flat_image({1, 12, 8, 0});
    expect_error(ErrorCode::unsupported, "boot information tag 8", [&] {
        load_multiboot2(m, {wants_framebuffer_info, "", {}, {}});
    });
}

TEST(Multiboot1, LoadsElf64ImagesByPhysicalAddress) {
    std::vector<std::uint8_t> f(0x300, 0);
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_machine = EM_X86_64;
    eh.e_entry = 0x400010;
    eh.e_phoff = sizeof eh;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 1;
    Elf64_Phdr ph{};
    ph.p_type = PT_LOAD;
    ph.p_offset = 0x200;
    ph.p_vaddr = 0xffffffff80400000; // higher-half link address; loaded physically
    ph.p_paddr = 0x400000;
    ph.p_filesz = 0x100;
    ph.p_memsz = 0x100;
    std::memcpy(f.data(), &eh, sizeof eh);
    std::memcpy(f.data() + sizeof eh, &ph, sizeof ph);
    std::uint32_t header[3] = {multiboot1_header_magic, 0, -multiboot1_header_magic};
    std::memcpy(f.data() + 0x200, header, sizeof header);
    f[0x2ff] = 0x77;
    GuestMemory m(8 << 20);
    LoadedGuest g = load_multiboot1(m, {f, "", {}, {}});
    EXPECT_EQ(g.bsp.rip, 0x400010u);
    EXPECT_EQ(m.read_value<std::uint32_t>(0x400000), multiboot1_header_magic);
    EXPECT_EQ(m.read_value<std::uint8_t>(0x4000ff), 0x77);
}
