#include "dirty_log/dirty_bitmap.hpp"

#include <gtest/gtest.h>

namespace godwit::hv::dirty_log {
namespace {

TEST(DirtyBitmap, MarksWithinRange) {
    u64 storage[2];
    DirtyBitmap b;
    b.init(storage, 0x100000, 100);
    b.mark(0x100000);
    b.mark(0x100FFF); // same page
    b.mark(0x100000 + 99 * 4096);
    b.mark(0x100000 + 100 * 4096); // just past the end
    b.mark(0xFFFFF);               // just before
    EXPECT_EQ(b.count(), 2u);
    EXPECT_EQ(b.out_of_range(), 2u);
    EXPECT_TRUE(b.test(0x100000 + 99 * 4096 + 5));
    b.clear();
    EXPECT_EQ(b.count(), 0u);
}

TEST(Pml, HarvestsValidEntriesOnly) {
    u64 storage[1];
    DirtyBitmap b;
    b.init(storage, 0, 64);
    u64 log[pml_entries] = {};
    for (u32 i = 0; i < pml_entries; ++i)
        log[i] = 0x3F000; // stale garbage
    log[511] = 0x3000;
    log[510] = 0x7123; // Bochs 2.7: not 4 KiB aligned
    log[509] = 0x3000; // duplicates are fine
    EXPECT_EQ(harvest_pml(log, 508, b), 3u);
    EXPECT_EQ(b.count(), 2u);
    EXPECT_TRUE(b.test(0x3000) && b.test(0x7000));
    EXPECT_FALSE(b.test(0x3F000));
}

TEST(Pml, FullAndEmptyLogs) {
    u64 storage[1];
    DirtyBitmap b;
    b.init(storage, 0, 64);
    u64 log[pml_entries];
    for (u32 i = 0; i < pml_entries; ++i)
        log[i] = (i % 64) * 4096;
    EXPECT_EQ(harvest_pml(log, 511, b), 0u);      // nothing logged yet
    EXPECT_EQ(harvest_pml(log, 0xFFFF, b), 512u); // index wrapped: all entries valid
    EXPECT_EQ(b.count(), 64u);
}

} // namespace
} // namespace godwit::hv::dirty_log
