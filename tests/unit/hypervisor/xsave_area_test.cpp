// Guest FPU state: XCR0 rules (XSETBV), the layout from CPUID 0xD, the reset state and the
// checks GODWIT_HC_VCPU_SET_FPU applies before XRSTOR could see a state.
#include "arch/x86/xsave_area.hpp"

#include <cstring>
#include <memory>

#include <gtest/gtest.h>

#include "arch/x86/cpuid_policy.hpp"

namespace {

using namespace godwit::hv;
using namespace godwit::hv::x86;

// A Skylake-X: x87, SSE, AVX, MPX, AVX-512, PKRU with their standard offsets.
XsaveLayout skylake_x() {
    u32 offsets[19] = {0, 0, 576, 960, 1024, 1088, 1152, 1664, 0, 2688};
    u32 sizes[19] = {0, 0, 256, 64, 64, 64, 512, 1024, 0, 8};
    return make_xsave_layout(true, 0x2FF, offsets, sizes, 0xFFFF);
}

std::unique_ptr<godwit_hc_vcpu_fpu> reset_state(const XsaveLayout& l) {
    auto f = std::make_unique<godwit_hc_vcpu_fpu>();
    f->format = GODWIT_FPU_FORMAT;
    f->area_bytes = l.area_bytes;
    f->xcr0 = 1;
    reset_xsave_area(f->xsave);
    return f;
}

void set_bv(godwit_hc_vcpu_fpu& f, u64 bv) {
    std::memcpy(f.xsave + 512, &bv, 8);
}

TEST(XsaveArea, Xcr0Rules) {
    u64 all = 0x2E7;
    EXPECT_TRUE(xcr0_valid(1, all));
    EXPECT_TRUE(xcr0_valid(3, all));
    EXPECT_TRUE(xcr0_valid(7, all));
    EXPECT_TRUE(xcr0_valid(0xE7, all));
    EXPECT_TRUE(xcr0_valid(0x2E7, all));
    EXPECT_FALSE(xcr0_valid(0, all));    // x87 must stay set
    EXPECT_FALSE(xcr0_valid(2, all));    // x87 must stay set
    EXPECT_FALSE(xcr0_valid(5, all));    // AVX without SSE
    EXPECT_FALSE(xcr0_valid(0x27, all)); // part of AVX-512
    EXPECT_FALSE(xcr0_valid(0xE3, all)); // AVX-512 without AVX
    EXPECT_FALSE(xcr0_valid(0x1F, all)); // MPX: not allowed by this mask
    EXPECT_FALSE(xcr0_valid(7, 3));      // AVX not supported
    EXPECT_TRUE(xcr0_valid(0x1F, 0x1F)); // MPX whole
    EXPECT_FALSE(xcr0_valid(0x0F, 0x1F));
    EXPECT_FALSE(xcr0_valid(1ull << 63, ~0ull));
    EXPECT_FALSE(xcr0_valid(0x20003, ~0ull)); // AMX TILECFG without TILEDATA
}

TEST(XsaveArea, LayoutFollowsPolicyAndCpuid) {
    XsaveLayout l = skylake_x();
    EXPECT_TRUE(l.xsave);
    EXPECT_EQ(l.features, 0x2E7u); // MPX dropped by the policy
    EXPECT_EQ(l.area_bytes, 2696u);
    EXPECT_EQ(l.offset[2], 576u);

    u32 offsets[19] = {0, 0, 576}, sizes[19] = {0, 0, 256};
    XsaveLayout avx = make_xsave_layout(true, 7, offsets, sizes, 0);
    EXPECT_EQ(avx.features, 7u);
    EXPECT_EQ(avx.area_bytes, 832u);
    EXPECT_EQ(avx.mxcsr_mask, 0xFFBFu); // FXSAVE's 0 means the default mask

    XsaveLayout fx = make_xsave_layout(false, 0, offsets, sizes, 0xFFFF);
    EXPECT_FALSE(fx.xsave);
    EXPECT_EQ(fx.features, 3u);
    EXPECT_EQ(fx.area_bytes, 576u);

    // A component reported beyond the ABI's area is not offered, nor is its group.
    u32 big_offsets[19] = {0, 0, 576, 0, 0, 1088, 1152, 1664},
        big_sizes[19] = {0, 0, 256, 0, 0, 64, 512, 4096};
    XsaveLayout big = make_xsave_layout(true, 0xE7, big_offsets, big_sizes, 0xFFFF);
    EXPECT_EQ(big.features, 7u);
}

TEST(XsaveArea, ResetState) {
    u8 area[GODWIT_FPU_AREA_BYTES];
    std::memset(area, 0xAA, sizeof area);
    reset_xsave_area(area);
    u16 fcw = 0;
    u32 mxcsr = 0;
    u64 bv = 1;
    std::memcpy(&fcw, area, 2);
    std::memcpy(&mxcsr, area + 24, 4);
    std::memcpy(&bv, area + 512, 8);
    EXPECT_EQ(fcw, 0x37Fu);
    EXPECT_EQ(mxcsr, 0x1F80u);
    EXPECT_EQ(bv, 0u);
    EXPECT_EQ(area[2], 0); // FSW
    EXPECT_EQ(area[GODWIT_FPU_AREA_BYTES - 1], 0);
}

TEST(XsaveArea, CheckAcceptsValidStates) {
    XsaveLayout l = skylake_x();
    auto f = reset_state(l);
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_OK});
    f->xcr0 = 0xE7;
    set_bv(*f, 0xE7 | (1ull << 9)); // PKRU state without XCR0.PKRU: the CPU switches it
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_OK});
}

TEST(XsaveArea, CheckRefusesWhatXrstorWouldFaultOn) {
    XsaveLayout l = skylake_x();
    auto f = reset_state(l);
    f->format = 2;
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_BAD_ARGUMENT});
    f = reset_state(l);
    f->reserved[0] = 1;
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_BAD_ARGUMENT});
    f = reset_state(l);
    f->xcr0 = 5; // AVX without SSE
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_BAD_ARGUMENT});
    f = reset_state(l);
    f->xcr0 = 0x1F; // MPX: the host has it, guests do not
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_BAD_ARGUMENT});
    f = reset_state(l);
    set_bv(*f, 1ull << 3); // XSTATE_BV: a component the hypervisor does not switch
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_BAD_ARGUMENT});
    f = reset_state(l);
    set_bv(*f, 1ull << 63); // reserved bit of XSTATE_BV
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_BAD_ARGUMENT});
    f = reset_state(l);
    u64 xcomp = 1ull << 63; // compacted format
    std::memcpy(f->xsave + 520, &xcomp, 8);
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_BAD_ARGUMENT});
    f = reset_state(l);
    f->xsave[512 + 20] = 1; // header reserved bytes
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_BAD_ARGUMENT});
    f = reset_state(l);
    u32 mxcsr = 0x1F80 | (1u << 16); // outside MXCSR_MASK
    std::memcpy(f->xsave + 24, &mxcsr, 4);
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_BAD_ARGUMENT});
    f = reset_state(l);
    f->area_bytes = 832; // AVX-512 state present but the caller sent only 832 bytes
    set_bv(*f, 0xE7);
    f->xcr0 = 0xE7;
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_BAD_ARGUMENT});
    set_bv(*f, 0x7);
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_OK});
    f->area_bytes = 575;
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_BAD_ARGUMENT});
}

TEST(XsaveArea, FxsaveFallback) {
    u32 none[19] = {};
    XsaveLayout l = make_xsave_layout(false, 0, none, none, 0xFFFF);
    auto f = reset_state(l);
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_OK});
    f->xcr0 = 3; // no XCR0 without XSAVE
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_BAD_ARGUMENT});
    f = reset_state(l);
    set_bv(*f, 4);
    EXPECT_EQ(check_fpu_state(*f, l), u64{GODWIT_HC_BAD_ARGUMENT});
    // Components in their initial configuration get their initial values in the legacy
    // region, which FXRSTOR loads whole.
    f = reset_state(l);
    std::memset(f->xsave, 0x55, 512);
    u32 mxcsr = 0x1F80;
    std::memcpy(f->xsave + 24, &mxcsr, 4);
    apply_init_for_fxrstor(f->xsave);
    u16 fcw = 0;
    std::memcpy(&fcw, f->xsave, 2);
    EXPECT_EQ(fcw, 0x37Fu);
    EXPECT_EQ(f->xsave[32], 0);  // ST0
    EXPECT_EQ(f->xsave[160], 0); // XMM0
    std::memcpy(&mxcsr, f->xsave + 24, 4);
    EXPECT_EQ(mxcsr, 0x1F80u);
    u64 bv = 0;
    std::memcpy(&bv, f->xsave + 512, 8);
    EXPECT_EQ(bv, 3u);
}

TEST(CpuidPolicy, GuestXsaveLeaves) {
    // Leaf 0xD.0: only the components guests get, the size they need.
    CpuidValues d0 = restrict_xsave_features(0xD, 0, {0x2FF, 2696, 2696, 0}, 0x2E7, 2696);
    EXPECT_EQ(d0.eax, 0x2E7u);
    EXPECT_EQ(d0.ecx, 2696u);
    CpuidValues d1 = restrict_xsave_features(0xD, 1, {0xF, 1000, 0x100, 0}, 0x2E7, 2696);
    EXPECT_EQ(d1.eax, 0x7u); // no XSAVES
    EXPECT_EQ(d1.ecx, 0u);
    CpuidValues mpx = restrict_xsave_features(0xD, 3, {64, 960, 0, 0}, 0x2E7, 2696);
    EXPECT_EQ(mpx.eax, 0u);
    CpuidValues avx = restrict_xsave_features(0xD, 2, {256, 576, 0, 0}, 0x2E7, 2696);
    EXPECT_EQ(avx.ebx, 576u);
    // Leaf 7: MPX hidden, AVX-512 kept; without AVX-512 state its feature bits go too.
    CpuidValues l7 = restrict_xsave_features(7, 0, {0, (1u << 14) | (1u << 16), 0, 0}, 0x2E7, 2696);
    EXPECT_EQ(l7.ebx, 1u << 16);
    l7 = restrict_xsave_features(7, 0, {0, 1u << 16, 1u << 1, 1u << 22}, 7, 832);
    EXPECT_EQ(l7.ebx, 0u);
    EXPECT_EQ(l7.ecx, 0u);
    EXPECT_EQ(l7.edx, 0u);
    // Other leaves pass.
    CpuidValues l1 = restrict_xsave_features(1, 0, {1, 2, 3, 4}, 7, 832);
    EXPECT_EQ(l1.ecx, 3u);
}

} // namespace
