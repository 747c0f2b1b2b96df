// The root partition's memory policy: identity EPT minus hypervisor memory, initramfs
// placement, and which buffers a hypercall may touch.
#include "root/root_memory.hpp"

#include <gtest/gtest.h>

#include "fake_table_memory.hpp"

namespace godwit::hv::root {
namespace {

using ept::PageSize;

MtrrState write_back_below_4g() {
    MtrrState s{};
    s.enabled = true;
    s.fixed_enabled = true;
    s.default_type = mtrr_uc;
    s.physical_address_mask = (1ull << 39) - 1;
    for (u64& f : s.fixed)
        f = 0x0606060606060606ull; // WB
    s.fixed[2] = 0;                // A0000-BFFFF UC (VGA)
    s.variable_count = 1;
    s.variable_base[0] = mtrr_wb; // 0-3 GiB WB, 3-4 GiB UC (MMIO hole) by default type
    s.variable_mask[0] = (~((2ull << 30) - 1) & s.physical_address_mask) | (1 << 11);
    s.variable_count = 2;
    s.variable_base[1] = (2ull << 30) | mtrr_wb;
    s.variable_mask[1] = (~((1ull << 30) - 1) & s.physical_address_mask) | (1 << 11);
    return s;
}

struct Mapped {
    bool present;
    u64 hpa;
    PageSize size;
    u8 type;
};

Mapped lookup(ept::EptTable& t, u64 gpa) {
    Mapped m{};
    u8 access = 0;
    m.present = t.translate(gpa, m.hpa, access, m.size);
    if (m.present)
        m.type = static_cast<u8>((*t.leaf_entry(gpa) >> ept::bits::memory_type_shift) & 7);
    return m;
}

TEST(RootMemory, IdentityMapHidesHypervisorMemory) {
    ept::FakeTableMemory memory;
    ept::EptTable table(memory);
    ASSERT_EQ(table.init(), ept::Status::ok);
    const Range hidden[] = {{0x200000, 0x137000}, {0x1DE00000, 32ull << 20}};
    IdentityMapStats stats{};
    ASSERT_EQ(
        map_identity(table, write_back_below_4g(), 4ull << 30, hidden, 2, PageSize::size_1g, stats),
        ept::Status::ok);
    // Every byte of the hypervisor is absent; its neighbours are mapped 1:1.
    for (const Range& h : hidden) {
        for (u64 a = h.base; a < h.end(); a += page_size)
            ASSERT_FALSE(lookup(table, a).present) << std::hex << a;
        Mapped below = lookup(table, h.base - 1), above = lookup(table, h.end());
        EXPECT_TRUE(below.present);
        EXPECT_EQ(below.hpa, h.base - 1);
        EXPECT_TRUE(above.present);
        EXPECT_EQ(above.hpa, h.end());
    }
    EXPECT_EQ(stats.hidden_bytes, 0x137000u + (32ull << 20));
    // Types follow the MTRRs: VGA hole UC, RAM WB, the 3-4 GiB hole UC, with large pages.
    EXPECT_EQ(lookup(table, 0xA0000).type, mtrr_uc);
    EXPECT_EQ(lookup(table, 0x9F000).type, mtrr_wb);
    EXPECT_EQ(lookup(table, 0x40000000).size, PageSize::size_1g);
    EXPECT_EQ(lookup(table, 0x40000000).type, mtrr_wb);
    EXPECT_EQ(lookup(table, 0xFEE00000).type, mtrr_uc);
    EXPECT_EQ(lookup(table, 0xFEE00000).size, PageSize::size_1g);
    EXPECT_EQ(lookup(table, 0xFEE00000).hpa, 0xFEE00000u);
    EXPECT_FALSE(lookup(table, 4ull << 30).present);
    EXPECT_EQ(stats.pages_1g, 3u); // 1-2 GiB, 2-3 GiB (WB) and 3-4 GiB (UC)
    table.destroy();
}

TEST(RootMemory, IdentityMapRespectsLargestPageAndAlignment) {
    ept::FakeTableMemory memory;
    ept::EptTable table(memory);
    ASSERT_EQ(table.init(), ept::Status::ok);
    IdentityMapStats stats{};
    ASSERT_EQ(map_identity(table, write_back_below_4g(), 1ull << 30, nullptr, 0, PageSize::size_2m,
                           stats),
              ept::Status::ok);
    EXPECT_EQ(stats.pages_1g, 0u);
    EXPECT_EQ(stats.pages_2m, 511u); // the first 2 MiB is mixed (fixed MTRRs): 4 KiB pages
    EXPECT_EQ(stats.pages_4k, 512u);
    const Range odd[] = {{0x1001, 0x1000}};
    EXPECT_EQ(
        map_identity(table, write_back_below_4g(), 1ull << 30, odd, 1, PageSize::size_2m, stats),
        ept::Status::misaligned);
    table.destroy();
}

TEST(RootMemory, IdentityMapReportsOutOfMemory) {
    ept::FakeTableMemory memory;
    ept::EptTable table(memory);
    ASSERT_EQ(table.init(), ept::Status::ok);
    memory.set_limit(3);
    IdentityMapStats stats{};
    EXPECT_EQ(map_identity(table, write_back_below_4g(), 4ull << 30, nullptr, 0, PageSize::size_4k,
                           stats),
              ept::Status::no_memory);
    table.destroy();
}

TEST(RootMemory, PlaceHighAvoidsEverything) {
    const Range ram[] = {{0, 0x9F000}, {0x100000, 0x1FE00000 - 0x100000}};
    const Range avoid[] = {{0x1DE00000, 32ull << 20}, {0x1000000, 63ull << 20}, {0, 1ull << 20}};
    u64 size = 14 << 20;
    u64 a = place_high(ram, 2, avoid, 3, size, 4ull << 30);
    EXPECT_EQ(a, 0x1DE00000 - size);
    // With the top taken as well, it slides below the next obstacle.
    const Range more[] = {
        {0x1DE00000, 32ull << 20}, {0x1000000, 63ull << 20}, {0x10000000, 0x0DE00000}};
    a = place_high(ram, 2, more, 3, size, 4ull << 30);
    EXPECT_EQ(a, 0x10000000 - size);
    EXPECT_EQ(place_high(ram, 2, more, 3, 512ull << 20, 4ull << 30), 0u); // does not fit
    EXPECT_EQ(place_high(ram, 2, avoid, 3, size, 0x5000000), 0x200000u);  // below the kernel
    EXPECT_EQ(place_high(ram, 2, avoid, 3, size, 0xE00000), 0u);          // limit too low
    EXPECT_EQ(place_high(ram, 2, avoid, 3, 0, 4ull << 30), 0u);
}

TEST(RootMemory, BuffersOnlyInRootRam) {
    using linux_boot::E820Entry;
    const E820Entry e820[] = {{0, 0x9F000, 1},
                              {0x100000, 0x100000, 1},
                              {0x200000, 0x137000, 2},
                              {0x337000, 0x1000000, 1},
                              {0xFEC00000, 0x1000, 2}};
    EXPECT_TRUE(buffer_in_ram(e820, 5, 0x1000, 72));
    EXPECT_TRUE(buffer_in_ram(e820, 5, 0x337000, 4096));
    EXPECT_FALSE(buffer_in_ram(e820, 5, 0x200000, 8));   // hypervisor image
    EXPECT_FALSE(buffer_in_ram(e820, 5, 0x1FFFF8, 16));  // straddles into it
    EXPECT_FALSE(buffer_in_ram(e820, 5, 0xFEC00000, 4)); // MMIO
    EXPECT_FALSE(buffer_in_ram(e820, 5, 0xA0000, 16));   // hole
    EXPECT_FALSE(buffer_in_ram(e820, 5, 0x1000, 0));     // empty
    EXPECT_FALSE(buffer_in_ram(e820, 5, ~0ull - 7, 16)); // wraps
}

} // namespace
} // namespace godwit::hv::root
