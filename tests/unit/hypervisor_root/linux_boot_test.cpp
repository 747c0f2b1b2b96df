#include "root/linux_boot.hpp"

#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include <gtest/gtest.h>

namespace godwit::hv::linux_boot {
namespace {

std::vector<u8> synthetic_bzimage(u8 setup_sects = 31, u64 size = 64 * 1024) {
    std::vector<u8> img(size, 0);
    SetupHeader h{};
    h.setup_sects = setup_sects;
    h.boot_flag = boot_flag_magic;
    h.header = header_magic;
    h.version = 0x020F;
    h.xloadflags = xlf_kernel_64 | xlf_can_be_loaded_above_4g;
    h.kernel_alignment = 0x200000;
    h.pref_address = 0x1000000;
    h.init_size = 0x2000000;
    h.cmdline_size = 2047;
    h.loadflags = loadflag_can_use_heap;
    std::memcpy(img.data() + 0x1F1, &h, sizeof h);
    return img;
}

TEST(BzImage, ParsesSyntheticHeader) {
    auto img = synthetic_bzimage();
    BzImage bz{};
    ASSERT_EQ(parse_bzimage(img.data(), img.size(), bz), Status::ok);
    EXPECT_EQ(bz.setup_size, 32u * 512);
    EXPECT_EQ(bz.kernel_size, img.size() - 32 * 512);
    EXPECT_EQ(bz.load_address, 0x1000000u);
    EXPECT_EQ(bz.init_size, 0x2000000u);
    EXPECT_EQ(bz.cmdline_max, 2047u);
}

TEST(BzImage, ZeroSetupSectsMeansFour) {
    auto img = synthetic_bzimage(0);
    BzImage bz{};
    ASSERT_EQ(parse_bzimage(img.data(), img.size(), bz), Status::ok);
    EXPECT_EQ(bz.setup_size, 5u * 512);
}

TEST(BzImage, RejectsBadImages) {
    BzImage bz{};
    auto img = synthetic_bzimage();
    EXPECT_EQ(parse_bzimage(img.data(), 0x200, bz), Status::too_small);

    auto bad_flag = img;
    bad_flag[0x1FE] = 0;
    EXPECT_EQ(parse_bzimage(bad_flag.data(), bad_flag.size(), bz), Status::bad_boot_flag);

    auto bad_magic = img;
    bad_magic[0x202] = 'X';
    EXPECT_EQ(parse_bzimage(bad_magic.data(), bad_magic.size(), bz), Status::bad_magic);

    auto old = img;
    old[0x206] = 0x0B; // version 2.11
    EXPECT_EQ(parse_bzimage(old.data(), old.size(), bz), Status::protocol_too_old);

    auto no64 = img;
    no64[0x236] = 0;
    EXPECT_EQ(parse_bzimage(no64.data(), no64.size(), bz), Status::no_64bit_entry);

    auto huge_setup = synthetic_bzimage(255, 100 * 512);
    EXPECT_EQ(parse_bzimage(huge_setup.data(), huge_setup.size(), bz), Status::setup_beyond_image);

    auto bad_align = img;
    bad_align[0x230] = 3;
    EXPECT_EQ(parse_bzimage(bad_align.data(), bad_align.size(), bz), Status::bad_alignment);
}

// The kernel Godwit actually boots as its root partition.
TEST(BzImage, ParsesDebianKernel) {
    std::ifstream f(GODWIT_ROOT_KERNEL, std::ios::binary);
    ASSERT_TRUE(f) << "missing " << GODWIT_ROOT_KERNEL << " (build target root_image)";
    std::vector<u8> img((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    BzImage bz{};
    ASSERT_EQ(parse_bzimage(img.data(), img.size(), bz), Status::ok);
    EXPECT_GE(bz.header.version, 0x020F);
    EXPECT_TRUE(bz.header.relocatable_kernel);
    EXPECT_EQ(bz.load_address, 0x1000000u); // Debian's CONFIG_PHYSICAL_START
    EXPECT_GT(bz.init_size, bz.kernel_size);
    EXPECT_GE(bz.cmdline_max, 2047u);
}

TEST(E820, CarvesHypervisorOutOfRam) {
    MemoryRange ram[] = {
        {0, 0x9FC00, E820Type::ram},
        {0x9FC00, 0x400, E820Type::reserved},
        {0xF0000, 0x10000, E820Type::reserved},
        {0x100000, 0x7EF0000, E820Type::ram}, // 1 MiB .. 128 MiB - 64 KiB
        {0x7FF0000, 0x10000, E820Type::acpi},
    };
    MemoryRange hv[] = {{0x200000, 0x600000, E820Type::reserved}}; // 2..8 MiB
    E820Entry out[e820_max_entries];
    u32 n = 0;
    ASSERT_EQ(build_e820(ram, 5, hv, 1, out, n), Status::ok);
    ASSERT_EQ(n, 7u);
    EXPECT_EQ(out[0].addr, 0u);
    EXPECT_EQ(out[0].size, 0x9FC00u);
    EXPECT_EQ(out[1].type, 2u);
    EXPECT_EQ(out[2].addr, 0xF0000u);
    EXPECT_EQ(out[3].addr, 0x100000u);
    EXPECT_EQ(out[3].size, 0x100000u);
    EXPECT_EQ(out[3].type, 1u);
    EXPECT_EQ(out[4].addr, 0x200000u);
    EXPECT_EQ(out[4].size, 0x600000u);
    EXPECT_EQ(out[4].type, 2u);
    EXPECT_EQ(out[5].addr, 0x800000u);
    EXPECT_EQ(out[5].size, 0x7FF0000u - 0x800000u);
    EXPECT_EQ(out[6].type, 3u);
}

TEST(E820, OverlapsResolveToLargerTypeAndMerge) {
    MemoryRange ram[] = {
        {0x100000, 0x100000, E820Type::ram},
        {0x180000, 0x100000, E820Type::ram},     // overlaps and extends: merged
        {0x1C0000, 0x10000, E820Type::reserved}, // inside RAM: wins
    };
    E820Entry out[e820_max_entries];
    u32 n = 0;
    ASSERT_EQ(build_e820(ram, 3, nullptr, 0, out, n), Status::ok);
    ASSERT_EQ(n, 3u);
    EXPECT_EQ(out[0].addr, 0x100000u);
    EXPECT_EQ(out[0].size, 0xC0000u);
    EXPECT_EQ(out[1].addr, 0x1C0000u);
    EXPECT_EQ(out[1].type, 2u);
    EXPECT_EQ(out[2].addr, 0x1D0000u);
    EXPECT_EQ(out[2].size, 0x280000u - 0x1D0000u);
}

TEST(E820, CarveOutOverHoleAddsNothingAndBadRangesIgnored) {
    MemoryRange ram[] = {{0x100000, 0x100000, E820Type::ram},
                         {~0ull - 10, 100, E820Type::ram}, // wraps: ignored
                         {0x500000, 0, E820Type::ram}};    // empty: ignored
    MemoryRange hv[] = {{0x300000, 0x100000, E820Type::reserved}};
    E820Entry out[e820_max_entries];
    u32 n = 0;
    ASSERT_EQ(build_e820(ram, 3, hv, 1, out, n), Status::ok);
    ASSERT_EQ(n, 1u);
    EXPECT_EQ(out[0].size, 0x100000u);
}

TEST(E820, TooManyRegions) {
    std::vector<MemoryRange> ram(101, MemoryRange{0, 4096, E820Type::ram});
    E820Entry out[e820_max_entries];
    u32 n = 5;
    EXPECT_EQ(build_e820(ram.data(), 101, nullptr, 0, out, n), Status::too_many_regions);
    EXPECT_EQ(n, 0u);
}

TEST(BootParams, FilledFor64BitEntry) {
    auto img = synthetic_bzimage();
    BzImage bz{};
    ASSERT_EQ(parse_bzimage(img.data(), img.size(), bz), Status::ok);
    E820Entry e820[2] = {{0, 0x9FC00, 1}, {0x100000, 0x1FF00000, 1}};
    auto bp = std::make_unique<BootParams>();
    std::memset(bp.get(), 0xCC, sizeof *bp);
    fill_boot_params(*bp, bz, {0x1'2000'0000, 0x1'0000'0000, 0x1234567, 0xF5A40}, e820, 2);
    const u8* raw = reinterpret_cast<const u8*>(bp.get());
    EXPECT_EQ(raw[0x210], 0xFF); // type_of_loader
    EXPECT_EQ(bp->hdr.cmd_line_ptr, 0x2000'0000u);
    EXPECT_EQ(bp->ext_cmd_line_ptr, 1u);
    EXPECT_EQ(bp->hdr.ramdisk_image, 0u);
    EXPECT_EQ(bp->ext_ramdisk_image, 1u);
    EXPECT_EQ(bp->hdr.ramdisk_size, 0x1234567u);
    EXPECT_EQ(bp->acpi_rsdp_addr, 0xF5A40u);
    EXPECT_EQ(raw[0x1E8], 2); // e820_entries
    EXPECT_EQ(bp->e820_table[1].size, 0x1FF00000u);
    EXPECT_EQ(raw[0x1EF], 0); // sentinel cleared: we know what we filled
    EXPECT_EQ(raw[0x0], 0);   // the rest zeroed
}

} // namespace
} // namespace godwit::hv::linux_boot
