#include "arch/x86/cpuid_policy.hpp"

#include <gtest/gtest.h>

#include "abi/godwit_hypercall.h"

namespace godwit::hv {
namespace {

TEST(CpuidPolicy, Leaf1HidesVmxAndMirrorsGuestOsxsave) {
    CpuidValues host{0x806EA, 0, (1u << 5) | (1u << 27) | 1u, 0};
    auto g = guest_cpuid(1, 0, host, 0);
    EXPECT_EQ(g.ecx & (1u << 5), 0u);  // no nested VT-x
    EXPECT_NE(g.ecx & (1u << 31), 0u); // running under a hypervisor
    EXPECT_EQ(g.ecx & (1u << 27), 0u); // guest CR4.OSXSAVE clear
    EXPECT_NE(g.ecx & 1u, 0u);         // the rest passes through
    auto g2 = guest_cpuid(1, 0, CpuidValues{0, 0, 0, 0}, 1ull << 18);
    EXPECT_NE(g2.ecx & (1u << 27), 0u); // guest CR4.OSXSAVE set
}

TEST(CpuidPolicy, Leaf7MirrorsGuestPke) {
    EXPECT_EQ(guest_cpuid(7, 0, {0, 0, 1u << 4, 0}, 0).ecx & (1u << 4), 0u);
    EXPECT_NE(guest_cpuid(7, 0, {0, 0, 0, 0}, 1ull << 22).ecx & (1u << 4), 0u);
    EXPECT_NE(guest_cpuid(7, 1, {0, 0, 1u << 4, 0}, 0).ecx & (1u << 4),
              0u); // other subleaf untouched
}

TEST(CpuidPolicy, HypervisorLeaves) {
    auto sig = guest_cpuid(0x40000000, 0, {}, 0);
    EXPECT_EQ(sig.eax, GODWIT_CPUID_LEAF_ABI);
    char text[13] = {};
    __builtin_memcpy(text, &sig.ebx, 4);
    __builtin_memcpy(text + 4, &sig.ecx, 4);
    __builtin_memcpy(text + 8, &sig.edx, 4);
    EXPECT_STREQ(text, "GodwitGodwit");
    EXPECT_EQ(guest_cpuid(0x40000001, 0, {}, 0).eax, GODWIT_HC_ABI_VERSION);
    auto unknown = guest_cpuid(0x40000010, 0, {1, 2, 3, 4}, 0);
    EXPECT_EQ(unknown.eax | unknown.ebx | unknown.ecx | unknown.edx, 0u);
}

TEST(CpuidPolicy, QuirkHidesMachineCheckOnlyWhenAsked) {
    CpuidValues host{0x50654, 0, 0, 0xBFEBFBFF}; // MCE (7) and MCA (14) set
    EXPECT_EQ(guest_cpuid(1, 0, host, 0).edx, 0xBFEBFBFFu);
    CpuidValues hidden = guest_cpuid(1, 0, host, 0, CpuidQuirks{.hide_machine_check = true});
    EXPECT_EQ(hidden.edx, 0xBFEBFBFFu & ~((1u << 7) | (1u << 14)));
    EXPECT_EQ(guest_cpuid(7, 0, host, 0, CpuidQuirks{.hide_machine_check = true}).edx, host.edx);
}

TEST(CpuidPolicy, AdvertisedTscFrequency) {
    // Bochs' corei7_skylake_x: crystal 25 MHz x 3499912/25000 would be odd; take a plain
    // 25 MHz x 140/1 = 3.5 GHz, and leaf 0x16 base 3500 MHz.
    CpuidValues leaf15{1, 140, 25000000, 0}, leaf16{3500, 4000, 100, 0};
    EXPECT_EQ(advertised_tsc_hz(0x16, leaf15, leaf16), 3500000000ull);
    // Crystal unknown (ECX 0): Linux derives it from leaf 0x16, so TSC = base.
    EXPECT_EQ(advertised_tsc_hz(0x16, {2, 70, 0, 0}, leaf16), 3500000000ull);
    // No ratio in 0x15: the early value is 0x16's base.
    EXPECT_EQ(advertised_tsc_hz(0x16, {0, 0, 0, 0}, leaf16), 3500000000ull);
    // Leaves beyond the CPU's maximum say nothing.
    EXPECT_EQ(advertised_tsc_hz(0x14, leaf15, leaf16), 0ull);
    EXPECT_EQ(advertised_tsc_hz(0x15, leaf15, leaf16), 3500000000ull);
    EXPECT_EQ(advertised_tsc_hz(0x15, {0, 0, 0, 0}, leaf16), 0ull);
}

TEST(CpuidPolicy, TscFrequencyDisagreement) {
    EXPECT_TRUE(tsc_frequency_disagrees(3500000000ull, 50000000ull));    // Bochs
    EXPECT_FALSE(tsc_frequency_disagrees(3000000000ull, 3001000000ull)); // real CPU
    EXPECT_FALSE(tsc_frequency_disagrees(100000000ull, 101900000ull));   // 1.9 %: fine
    EXPECT_TRUE(tsc_frequency_disagrees(100000000ull, 102100000ull));    // 2.1 %
    EXPECT_TRUE(tsc_frequency_disagrees(100000000ull, 97900000ull));
    EXPECT_FALSE(tsc_frequency_disagrees(0, 50000000ull));   // nothing advertised
    EXPECT_FALSE(tsc_frequency_disagrees(3500000000ull, 0)); // nothing measured
}

TEST(CpuidPolicy, MeasuredTscFrequencyReplacesLeaves15And16) {
    CpuidQuirks q{.tsc_hz = 50000000};
    CpuidValues host15{1, 140, 25000000, 0}, host16{3500, 4000, 100, 0};
    auto l15 = guest_cpuid(0x15, 0, host15, 0, q);
    auto l16 = guest_cpuid(0x16, 0, host16, 0, q);
    EXPECT_EQ(advertised_tsc_hz(0x16, l15, l16), 50000000ull);
    EXPECT_EQ(l16.eax, 50u);
    EXPECT_EQ(l16.ebx, 50u);
    EXPECT_EQ(l16.ecx, 100u); // bus frequency stays the CPU's
    // Without the quirk both pass through.
    EXPECT_EQ(guest_cpuid(0x15, 0, host15, 0).ebx, 140u);
    EXPECT_EQ(guest_cpuid(0x16, 0, host16, 0).eax, 3500u);
    // Above 4.29 GHz the crystal no longer fits ECX: ratio n/1 instead.
    CpuidValues fast = tsc_leaf15(5000000000ull);
    EXPECT_EQ(u64{fast.ecx} * fast.ebx / fast.eax, 5000000000ull);
    EXPECT_EQ(tsc_leaf16(400000, host16).eax, 1u); // under 1 MHz: 1, never 0
}

TEST(CpuidPolicy, QuirkHidesAdxOnlyWhenAsked) {
    CpuidValues host{0, (1u << 19) | (1u << 8), 0, 0}; // ADX, BMI2
    EXPECT_EQ(guest_cpuid(7, 0, host, 0, CpuidQuirks{.hide_adx = true}).ebx, 1u << 8);
    EXPECT_EQ(guest_cpuid(7, 0, host, 0).ebx, host.ebx);
    EXPECT_EQ(guest_cpuid(7, 1, host, 0, CpuidQuirks{.hide_adx = true}).ebx, host.ebx);
}

} // namespace
} // namespace godwit::hv
