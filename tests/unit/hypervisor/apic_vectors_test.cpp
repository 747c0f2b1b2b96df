#include "arch/x86/apic_vectors.hpp"

#include <gtest/gtest.h>

namespace godwit::hv::x86 {
namespace {

// IRR/ISR bitmaps and the delivery rule (Vol. 3A 11.8.3.1): only the priority class counts.
TEST(ApicVectors, HighestVectorAndPriority) {
    u32 none[8] = {};
    EXPECT_EQ(highest_vector(none), -1);
    u32 bits[8] = {};
    bits[1] = 1u << 0; // vector 32
    EXPECT_EQ(highest_vector(bits), 32);
    bits[7] = 1u << 12; // vector 236, Linux's local timer
    EXPECT_EQ(highest_vector(bits), 236);
    bits[7] |= 1u << 31;
    EXPECT_EQ(highest_vector(bits), 255);

    EXPECT_FALSE(deliverable(-1, 0));
    EXPECT_TRUE(deliverable(236, 0));
    EXPECT_TRUE(deliverable(236, 0xD0));
    EXPECT_FALSE(deliverable(236, 0xE0)); // same class in service (ISRV 0xEx) or TPR
    EXPECT_FALSE(deliverable(236, 0xEF));
    EXPECT_FALSE(deliverable(0x41, 0x40));
    EXPECT_TRUE(deliverable(0x50, 0x4F));
}

} // namespace
} // namespace godwit::hv::x86
