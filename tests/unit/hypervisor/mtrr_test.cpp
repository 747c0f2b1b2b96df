#include "arch/x86/mtrr.hpp"

#include <gtest/gtest.h>

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

} // namespace
} // namespace godwit::hv
