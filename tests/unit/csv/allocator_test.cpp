#include <gtest/gtest.h>

#include "godwit/csv/allocator.hpp"
#include "godwit/error.hpp"

using godwit::csv::ExtentAllocator;
using Runs = std::vector<godwit::csv::Run>;
using R = godwit::csv::Run;

TEST(CsvAllocator, ReleaseMergesNeighbours) {
    ExtentAllocator a;
    a.release(10, 5);
    a.release(20, 5);
    a.release(15, 5);
    EXPECT_EQ(a.free_runs(), (Runs{{10, 15}}));
    EXPECT_EQ(a.free_blocks(), 15u);
    EXPECT_THROW(a.release(12, 1), godwit::Error); // double free
    EXPECT_THROW(a.release(5, 6), godwit::Error);
}

TEST(CsvAllocator, ContinuesAtTheGoalThenBestFit) {
    ExtentAllocator a;
    a.release(100, 10);  // small
    a.release(200, 50);  // best fit for 40
    a.release(300, 500); // large
    EXPECT_EQ(a.allocate(40, 0), (Runs{{200, 40}}));
    EXPECT_EQ(a.allocate(5, 240), (Runs{{240, 5}}));              // continues the file
    EXPECT_EQ(a.allocate(510, 0), (Runs{{300, 500}, {100, 10}})); // largest, then fit
}

TEST(CsvAllocator, LargestRunsFirstWhenFragmented) {
    ExtentAllocator a;
    for (std::uint64_t i = 0; i < 10; ++i) {
        a.release(i * 100, 10 + i); // runs of 10..19
    }
    auto runs = a.allocate(35, 0);
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_EQ(runs[0], (R{900, 19}));
    EXPECT_EQ(runs[1], (R{600, 16})); // the remaining 16 fit exactly
}

TEST(CsvAllocator, FullVolumeChangesNothing) {
    ExtentAllocator a;
    a.release(0, 10);
    EXPECT_THROW(a.allocate(11, 0), godwit::Error);
    EXPECT_EQ(a.free_blocks(), 10u);
    EXPECT_EQ(a.allocate(10, 0), (Runs{{0, 10}}));
    EXPECT_EQ(a.free_blocks(), 0u);
    a.release(3, 2);
    EXPECT_EQ(a.allocate(1, 3), (Runs{{3, 1}}));
    EXPECT_EQ(a.free_runs(), (Runs{{4, 1}}));
}
