#include "memory/frame_bitmap.hpp"

#include <vector>

#include <gtest/gtest.h>

namespace godwit::hv {
namespace {

struct Fixture {
    std::vector<u64> storage = std::vector<u64>(64); // 4096 frames = 16 MiB
    FrameBitmap bm;
    Fixture() {
        bm.init(storage.data(), 4096);
        bm.release_range(0, 0x9FC00);         // low RAM (partial last page stays used)
        bm.release_range(0x100000, 15 << 20); // 1..16 MiB
        bm.reserve_range(0x200000, 0x120000); // the image
    }
};

TEST(FrameBitmap, MapHandling) {
    Fixture f;
    EXPECT_TRUE(f.bm.is_used(0)); // frame 0 is never handed out
    EXPECT_FALSE(f.bm.is_used(1));
    EXPECT_TRUE(f.bm.is_used(0x9F)); // 0x9F000..0xA0000 only partly RAM
    EXPECT_TRUE(f.bm.is_used(0x200));
    EXPECT_TRUE(f.bm.is_used(0x31F));
    EXPECT_FALSE(f.bm.is_used(0x320));
    EXPECT_EQ(f.bm.free_count(), (0x9Fu - 1) + (3840u - 0x120u));
}

TEST(FrameBitmap, AllocatesAlignedRunsAndFrees) {
    Fixture f;
    u64 before = f.bm.free_count();
    u64 a = f.bm.allocate(512, 2 << 20);
    ASSERT_NE(a, 0u);
    EXPECT_EQ(a % (2 << 20), 0u);
    EXPECT_GE(a, 0x400000u); // 2 MiB-aligned runs only exist above the image
    EXPECT_EQ(f.bm.free_count(), before - 512);
    u64 b = f.bm.allocate(1, 4096);
    EXPECT_NE(b, 0u);
    EXPECT_NE(b, a);
    f.bm.free(a, 512);
    f.bm.free(b, 1);
    EXPECT_EQ(f.bm.free_count(), before);
    f.bm.free(b, 1); // double free is counted, not applied
    EXPECT_EQ(f.bm.bad_frees(), 1u);
    EXPECT_EQ(f.bm.free_count(), before);
}

TEST(FrameBitmap, ExhaustionAndBadArguments) {
    Fixture f;
    EXPECT_EQ(f.bm.allocate(100000, 4096), 0u);
    EXPECT_EQ(f.bm.allocate(1, 3000), 0u); // alignment not a power of two >= 4096
    EXPECT_EQ(f.bm.allocate(0, 4096), 0u);
    u64 n = 0;
    while (f.bm.allocate(1, 4096) != 0)
        ++n;
    EXPECT_EQ(f.bm.free_count(), 0u);
    EXPECT_GT(n, 3000u);
    f.bm.free(0x123, 1); // misaligned
    EXPECT_EQ(f.bm.bad_frees(), 1u);
}

} // namespace
} // namespace godwit::hv
