#include "arch/x86/mtrr.hpp"

#include <gtest/gtest.h>

#include <random>

namespace godwit::hv {
namespace {

// A typical PC: UC by default, RAM made WB by a variable range, a WT range overlapping it,
// a UC page inside, fixed ranges for the legacy areas.
MtrrState pc() {
    MtrrState s{};
    s.enabled = true;
    s.fixed_enabled = true;
    s.default_type = mtrr_uc;
    s.physical_address_mask = (1ull << 36) - 1;
    s.fixed[0] = 0x0606060606060606ull; // 0-512K WB
    s.fixed[2] = 0x0000000000000000ull; // A0000-BFFFF UC (VGA)
    s.fixed[3] = 0x0505050505050505ull; // C0000-C7FFF WP (option ROM)
    s.variable_count = 3;
    s.variable_base[0] = 0x0 | mtrr_wb; // 0 - 2 GiB WB
    s.variable_mask[0] = ((~(2ull << 30) + 1) & s.physical_address_mask & ~0xFFFull) | (1 << 11);
    s.variable_base[1] = 0x40000000 | mtrr_wt; // 1 GiB - 1 GiB + 256 MiB WT (overlaps WB)
    s.variable_mask[1] = ((~(256ull << 20) + 1) & s.physical_address_mask & ~0xFFFull) | (1 << 11);
    s.variable_base[2] = 0x50000000 | mtrr_uc; // 1.25 GiB + 4 KiB UC inside WB
    s.variable_mask[2] = ((~(4096ull) + 1) & s.physical_address_mask & ~0xFFFull) | (1 << 11);
    return s;
}

TEST(Mtrr, FixedRanges) {
    MtrrState s = pc();
    EXPECT_EQ(mtrr_type_of(s, 0x1000), mtrr_wb);
    EXPECT_EQ(mtrr_type_of(s, 0xA0000), mtrr_uc);
    EXPECT_EQ(mtrr_type_of(s, 0xC4000), mtrr_wp);
    s.fixed_enabled = false; // then variable ranges decide
    EXPECT_EQ(mtrr_type_of(s, 0xA0000), mtrr_wb);
}

TEST(Mtrr, VariableRangesAndPrecedence) {
    MtrrState s = pc();
    EXPECT_EQ(mtrr_type_of(s, 0x200000), mtrr_wb);
    EXPECT_EQ(mtrr_type_of(s, 0x40001000), mtrr_wt); // WT + WB -> WT
    EXPECT_EQ(mtrr_type_of(s, 0x50000000), mtrr_uc); // UC wins
    EXPECT_EQ(mtrr_type_of(s, 0x90000000), mtrr_uc); // no range: default
    s.variable_mask[1] &= ~(1ull << 11);             // invalid range is ignored
    EXPECT_EQ(mtrr_type_of(s, 0x40001000), mtrr_wb);
    s.enabled = false;
    EXPECT_EQ(mtrr_type_of(s, 0x200000), mtrr_uc);
}

TEST(Mtrr, Ranges) {
    MtrrState s = pc();
    EXPECT_EQ(mtrr_type_of_range(s, 0x200000, 2 << 20), mtrr_wb);
    EXPECT_EQ(mtrr_type_of_range(s, 0x4FF00000, 2 << 20), mtrr_mixed);
    EXPECT_EQ(mtrr_type_of_range(s, 0x7F000, 0x2000), mtrr_mixed); // WB then UC (fixed[1] is UC)
}

// The block computation against brute force (one sample per page) on random MTRR states,
// including non-contiguous masks, over a 32-bit address space so brute force stays cheap.
u8 sampled(const MtrrState& s, u64 base, u64 size) {
    u8 first = mtrr_type_of(s, base);
    for (u64 a = base + page_size; a < base + size; a += page_size) {
        if (mtrr_type_of(s, a) != first)
            return mtrr_mixed;
    }
    return first;
}

TEST(Mtrr, BlocksMatchSampling) {
    std::mt19937_64 rng(42);
    const u8 types[] = {mtrr_uc, mtrr_wc, mtrr_wt, mtrr_wp, mtrr_wb};
    int exact = 0, total = 0;
    for (int round = 0; round < 300; ++round) {
        MtrrState s{};
        s.enabled = true;
        s.fixed_enabled = rng() % 2;
        s.default_type = types[rng() % 5];
        s.physical_address_mask = (1ull << 32) - 1;
        for (u64& f : s.fixed)
            f = 0x0606060606060606ull;
        s.fixed[rng() % 11] = 0x0600000606000006ull;
        s.variable_count = 1 + rng() % 4;
        for (u32 i = 0; i < s.variable_count; ++i) {
            u64 size_log2 = 12 + rng() % 19; // 4 KiB .. 1 GiB
            u64 mask = ~((1ull << size_log2) - 1) & s.physical_address_mask;
            if (rng() % 8 == 0)
                mask &= ~(1ull << (size_log2 + 1 + rng() % 3)); // non-contiguous
            s.variable_base[i] = ((rng() & s.physical_address_mask) & mask) | types[rng() % 5];
            s.variable_mask[i] = mask | (rng() % 6 == 0 ? 0 : (1ull << 11));
        }
        for (int probe = 0; probe < 20; ++probe) {
            u64 size = 1ull << (12 + rng() % 19);
            u64 base = (rng() & s.physical_address_mask) & ~(size - 1);
            if (rng() % 4 == 0)
                base = 0;
            // Exact, or "mixed" where an MTRR covers part of the block with the same type as
            // the rest (conservative: the caller maps smaller pages). Never a wrong type.
            u8 block = mtrr_type_of_block(s, base, size), truth = sampled(s, base, size);
            ASSERT_TRUE(block == truth || block == mtrr_mixed)
                << "round " << round << " base 0x" << std::hex << base << " size 0x" << size;
            exact += block == truth;
            ++total;
        }
    }
    EXPECT_GT(exact, total * 9 / 10);
}

TEST(Mtrr, RangeOfUnalignedSpans) {
    MtrrState s = pc();
    EXPECT_EQ(mtrr_type_of_range(s, 0x100000, (2ull << 30) - 0x100000 - 1), mtrr_mixed);
    EXPECT_EQ(mtrr_type_of_range(s, 0x51000, 0x2000), mtrr_wb);
    EXPECT_EQ(mtrr_type_of_range(s, 0x80000000, 0x7FFFF000), mtrr_uc);
    EXPECT_EQ(mtrr_type_of_range(s, 0x50001000, 0x3000), mtrr_wb);
    EXPECT_EQ(mtrr_type_of_range(s, 0x4FFFF000, 0x2000), mtrr_mixed); // WT page, UC page
}

} // namespace
} // namespace godwit::hv
