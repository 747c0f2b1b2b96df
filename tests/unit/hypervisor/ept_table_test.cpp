// The real EPT table code over a fake physical memory (page-table policy, as in Hedron).
#include "ept/ept_table.hpp"
#include "fake_table_memory.hpp"

#include <gtest/gtest.h>

namespace godwit::hv::ept {
namespace {

struct Translation {
    bool mapped;
    u64 hpa;
    u8 access;
    PageSize size;
};

Translation tr(const EptTable& t, u64 gpa) {
    Translation r{};
    r.mapped = t.translate(gpa, r.hpa, r.access, r.size);
    return r;
}

TEST(EptTable, MapsAllThreeSizes) {
    FakeTableMemory mem;
    EptTable t(mem);
    ASSERT_EQ(t.init(), Status::ok);
    ASSERT_EQ(t.map(0x1000, 0x55000, PageSize::size_4k, access_rwx, memory_type_wb), Status::ok);
    ASSERT_EQ(t.map(0x200000, 0x40000000, PageSize::size_2m, access_read, memory_type_wb),
              Status::ok);
    ASSERT_EQ(t.map(0x80000000, 0xC0000000, PageSize::size_1g, access_rwx, memory_type_uc),
              Status::ok);
    auto a = tr(t, 0x1234);
    EXPECT_TRUE(a.mapped);
    EXPECT_EQ(a.hpa, 0x55234u);
    EXPECT_EQ(a.size, PageSize::size_4k);
    auto b = tr(t, 0x3FFFFF);
    EXPECT_EQ(b.hpa, 0x401FFFFFu);
    EXPECT_EQ(b.access, access_read);
    EXPECT_EQ(b.size, PageSize::size_2m);
    auto c = tr(t, 0x80000000 + 0x12345678);
    EXPECT_EQ(c.hpa, 0xC0000000u + 0x12345678u);
    EXPECT_EQ(c.size, PageSize::size_1g);
    EXPECT_FALSE(tr(t, 0x2000).mapped);
    // Leaf entry format (SDM Table 29-6): memory type in bits 5:3, large bit on 2M/1G.
    EXPECT_EQ((*t.leaf_entry(0x80000000) >> 3) & 7, u64{memory_type_uc});
    EXPECT_TRUE(*t.leaf_entry(0x200000) & bits::large);
    EXPECT_FALSE(*t.leaf_entry(0x1000) & bits::large);
    // EPTP: WB, walk length 4, A/D on request.
    EXPECT_EQ(t.eptp(false) & 0xFFF, 0x1Eu);
    EXPECT_EQ(t.eptp(true) & 0xFFF, 0x5Eu);
}

TEST(EptTable, RejectsMisalignedAndOutOfRange) {
    FakeTableMemory mem;
    EptTable t(mem);
    ASSERT_EQ(t.init(), Status::ok);
    EXPECT_EQ(t.map(0x1000, 0x2000, PageSize::size_2m, access_rwx, memory_type_wb),
              Status::misaligned);
    EXPECT_EQ(t.map(0x1001, 0x2000, PageSize::size_4k, access_rwx, memory_type_wb),
              Status::misaligned);
    EXPECT_EQ(t.map(1ull << 48, 0, PageSize::size_4k, access_rwx, memory_type_wb),
              Status::out_of_range);
    EXPECT_EQ(t.unmap(0x5000), Status::not_mapped);
    // A 2 MiB mapping over an existing table of 4 KiB pages is refused, not silently leaked.
    ASSERT_EQ(t.map(0x400000, 0x1000000, PageSize::size_4k, access_rwx, memory_type_wb),
              Status::ok);
    EXPECT_EQ(t.map(0x400000, 0x1000000, PageSize::size_2m, access_rwx, memory_type_wb),
              Status::conflict);
}

TEST(EptTable, UnmapSplitsLargePages) {
    FakeTableMemory mem;
    EptTable t(mem);
    ASSERT_EQ(t.init(), Status::ok);
    ASSERT_EQ(t.map(0, 0x40000000, PageSize::size_1g, access_rwx, memory_type_wb), Status::ok);
    ASSERT_EQ(t.unmap(0x201000), Status::ok);
    EXPECT_FALSE(tr(t, 0x201000).mapped);
    auto before = tr(t, 0x200FFF);
    EXPECT_TRUE(before.mapped);
    EXPECT_EQ(before.hpa, 0x40200FFFu);
    EXPECT_EQ(before.size, PageSize::size_4k);
    auto far = tr(t, 0x3FFF0000);
    EXPECT_EQ(far.hpa, 0x7FFF0000u);
    EXPECT_EQ(far.size, PageSize::size_2m); // only the 2 MiB around the hole was split to 4K
}

TEST(EptTable, ProtectRangeSplitsOnlyAtEdges) {
    FakeTableMemory mem;
    EptTable t(mem);
    ASSERT_EQ(t.init(), Status::ok);
    ASSERT_EQ(t.map(0, 0x10000000, PageSize::size_2m, access_rwx, memory_type_wb), Status::ok);
    ASSERT_EQ(t.map(0x200000, 0x10200000, PageSize::size_2m, access_rwx, memory_type_wb),
              Status::ok);
    ASSERT_EQ(t.map(0x400000, 0x10400000, PageSize::size_2m, access_rwx, memory_type_wb),
              Status::ok);
    // Write-protect 0x1FF000 .. 0x401000: straddles three 2 MiB pages.
    ASSERT_EQ(t.protect(0x1FF000, 0x202000, access_read | access_execute), Status::ok);
    EXPECT_EQ(tr(t, 0x1FE000).access, access_rwx);
    EXPECT_EQ(tr(t, 0x1FF000).access, access_read | access_execute);
    EXPECT_EQ(tr(t, 0x300000).access, access_read | access_execute);
    EXPECT_EQ(tr(t, 0x300000).size, PageSize::size_2m); // fully inside: kept large
    EXPECT_EQ(tr(t, 0x400000).access, access_read | access_execute);
    EXPECT_EQ(tr(t, 0x401000).access, access_rwx);
    EXPECT_EQ(tr(t, 0x401000).hpa, 0x10401000u);
    // Protecting to no access unmaps.
    ASSERT_EQ(t.protect(0x1000, 0x1000, 0), Status::ok);
    EXPECT_FALSE(tr(t, 0x1000).mapped);
}

TEST(EptTable, ClearDirtyWorksOn4KiBLeaves) {
    FakeTableMemory mem;
    EptTable t(mem);
    ASSERT_EQ(t.init(), Status::ok);
    ASSERT_EQ(t.map(0, 0x10000000, PageSize::size_2m, access_rwx, memory_type_wb), Status::ok);
    ASSERT_EQ(t.map(0x200000, 0x20000000, PageSize::size_4k, access_rwx, memory_type_wb),
              Status::ok);
    // The CPU set the dirty flags (a write to each page).
    *t.leaf_entry(0) |= bits::accessed | bits::dirty;
    *t.leaf_entry(0x200000) |= bits::accessed | bits::dirty;
    // A range over the 2 MiB page, the 4 KiB page and an unmapped page after it.
    ASSERT_EQ(t.clear_dirty(0x1000, 0x201000), Status::ok);
    // The large page became 4 KiB leaves, each with its own (clear) dirty flag.
    EXPECT_EQ(tr(t, 0x1000).size, PageSize::size_4k);
    EXPECT_EQ(tr(t, 0x1FF000).hpa, 0x101FF000u);
    EXPECT_EQ(tr(t, 0x1FF000).access, access_rwx);
    for (u64 gpa : {0x1000ull, 0x2000ull, 0x1FF000ull, 0x200000ull}) {
        ASSERT_NE(t.leaf_entry(gpa), nullptr) << gpa;
        EXPECT_EQ(*t.leaf_entry(gpa) & bits::dirty, 0u) << gpa;
        EXPECT_NE(*t.leaf_entry(gpa) & bits::accessed, 0u) << gpa; // only the dirty flag
    }
    // Outside the range: untouched (page 0 kept the flags the split copied).
    EXPECT_NE(*t.leaf_entry(0) & bits::dirty, 0u);
    EXPECT_EQ(t.clear_dirty(~0ull - 0x1000, 0x2000), Status::out_of_range);
}

TEST(EptTable, DestroyFreesEveryTableAndOutOfMemoryIsReported) {
    FakeTableMemory mem;
    {
        EptTable t(mem);
        ASSERT_EQ(t.init(), Status::ok);
        for (u64 i = 0; i < 64; ++i) {
            ASSERT_EQ(
                t.map(i << 30 | 0x5000, 0x1000, PageSize::size_4k, access_rwx, memory_type_wb),
                Status::ok);
        }
        EXPECT_EQ(t.tables_in_use(), mem.live());
        t.destroy();
        EXPECT_EQ(mem.live(), 0u);
    }
    mem.set_limit(2);
    EptTable small(mem);
    ASSERT_EQ(small.init(), Status::ok);
    EXPECT_EQ(small.map(0x1000, 0x1000, PageSize::size_4k, access_rwx, memory_type_wb),
              Status::no_memory);
}

} // namespace
} // namespace godwit::hv::ept
