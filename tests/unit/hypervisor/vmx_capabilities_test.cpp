#include "arch/x86/vmx/vmx_capabilities.hpp"

#include <gtest/gtest.h>

namespace godwit::hv::vmx {
namespace {

constexpr u64 cap(u32 must_be_one, u32 may_be_one) {
    return (u64{may_be_one} << 32) | must_be_one;
}

TEST(VmxControls, ComputedFromAllowedSettings) {
    u32 out = 0;
    // bits 1,2 must be 1; bits 0..7 and 31 may be 1.
    u64 c = cap(0x6, 0x800000FF);
    ASSERT_TRUE(compute_controls(c, 1u << 7, (1u << 31) | (1u << 12), out));
    EXPECT_EQ(out, 0x6u | (1u << 7) | (1u << 31)); // optional bit 12 not allowed: dropped
}

TEST(VmxControls, FailsWhenARequiredBitIsNotAllowed) {
    u32 out = 0xDEAD;
    EXPECT_FALSE(compute_controls(cap(0, 0xFF), 1u << 8, 0, out));
    EXPECT_EQ(out, 0xDEADu);
}

TEST(VmxControls, FixedBits) {
    // CR0 fixed0 = PE|NE|PG, fixed1 = all ones except bit 29 (NW) cleared.
    u64 fixed0 = 0x80000021, fixed1 = ~(1ull << 29);
    EXPECT_EQ(apply_fixed_bits(0x20000010, fixed0, fixed1), 0x80000031u);
}

// Capability values as Bochs' corei7_skylake_x reports them (read by the hypervisor at boot)
// and a variant without PML / secondary controls.
CapabilityMsrs skylake_like() {
    CapabilityMsrs c{};
    c.basic = (1ull << 55) | (u64{0x1000} << 32) | 0x2B;
    c.pinbased = cap(0x16, 0x7F);
    c.procbased = cap(0x04006172, 0xFFF9FFFE);
    c.procbased2 = cap(0, (1u << 1) | (1u << 3) | (1u << 5) | (1u << 7) | (1u << 17));
    c.ept_vpid = (1ull << 6) | (1ull << 14) | (1ull << 16) | (1ull << 17) | (1ull << 20) |
                 (1ull << 21) | (1ull << 25) | (1ull << 26) | (1ull << 32) | (1ull << 41) |
                 (1ull << 42);
    c.misc = 0x600401e0 | 5;
    return c;
}

TEST(VmxFeatures, DecodesCapabilities) {
    Features f = decode_features(skylake_like());
    EXPECT_EQ(f.vmcs_revision, 0x2Bu);
    EXPECT_EQ(f.vmcs_size, 0x1000u);
    EXPECT_TRUE(f.true_controls);
    EXPECT_TRUE(f.ept && f.vpid && f.unrestricted_guest && f.pml && f.ept_accessed_dirty);
    EXPECT_TRUE(f.ept_4level && f.ept_wb && f.ept_2m_pages && f.ept_1g_pages);
    EXPECT_TRUE(f.invept_single && f.invvpid_all);
    EXPECT_TRUE(f.preemption_timer);
    EXPECT_EQ(f.preemption_timer_shift, 5u);
    EXPECT_TRUE(f.wait_for_sipi);
}

TEST(VmxFeatures, PmlNeedsAccessedDirtyAndSecondaryControls) {
    CapabilityMsrs c = skylake_like();
    c.ept_vpid &= ~(1ull << 21);
    EXPECT_FALSE(decode_features(c).pml);
    c = skylake_like();
    c.procbased = cap(0x04006172, 0x7FF9FFFE); // no "activate secondary controls"
    Features f = decode_features(c);
    EXPECT_FALSE(f.ept);
    EXPECT_FALSE(f.unrestricted_guest);
    EXPECT_FALSE(f.ept_4level); // EPT caps are not read without EPT
}

} // namespace
} // namespace godwit::hv::vmx
