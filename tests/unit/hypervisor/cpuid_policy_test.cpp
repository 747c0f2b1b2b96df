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

} // namespace
} // namespace godwit::hv
