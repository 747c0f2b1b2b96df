// Root SMP's INIT/STARTUP policy (hypervisor/root/root_startup.hpp): which CPUs an IPI
// addresses, and that an AP parked in wait-for-SIPI never gets a hardware INIT, gets exactly
// one SIPI, and that an INIT for a running CPU is sent once.
#include "arch/x86/apic_icr.hpp"
#include "root/root_startup.hpp"

#include <gtest/gtest.h>

namespace godwit::hv::root {
namespace {

using x86::decode_icr;

constexpr u64 init_assert = 0x4500, init_deassert = 0x8500, startup = 0x4600;

u64 xapic(u32 apic_id, u64 low) {
    return (u64{apic_id} << 56) | low;
}

struct Cpus {
    u32 ids[4] = {0, 2, 4, 6};
    u8 states[4] = {u8(ApState::running), u8(ApState::waiting_for_sipi),
                    u8(ApState::waiting_for_sipi), u8(ApState::absent)};
    RootCpus view() { return RootCpus{4, ids, states}; }
    ApState state(u32 i) const { return static_cast<ApState>(states[i]); }
};

TEST(RootStartup, TargetsByApicIdAndShorthand) {
    Cpus c;
    RootCpus v = c.view();
    EXPECT_EQ(startup_targets(decode_icr(xapic(4, startup | 0x9A), false), 0, v, false), 0b100u);
    EXPECT_EQ(startup_targets(decode_icr(xapic(5, startup), false), 0, v, false), 0u);
    EXPECT_EQ(startup_targets(decode_icr(xapic(0xFF, init_assert), false), 0, v, false), 0xFu);
    EXPECT_EQ(startup_targets(decode_icr(0xC0000 | init_assert, false), 1, v, false), 0b1101u);
    EXPECT_EQ(startup_targets(decode_icr(0x80000 | init_assert, false), 1, v, false), 0xFu);
    EXPECT_EQ(startup_targets(decode_icr(0x40000 | init_assert, false), 2, v, false), 0b100u);
    // Logical destinations are not how CPUs are started: none.
    EXPECT_EQ(startup_targets(decode_icr(xapic(4, 0x800 | startup), false), 0, v, false), 0u);
    // x2APIC: 32-bit destination, broadcast 0xFFFFFFFF (0xFF is an ordinary ID there).
    EXPECT_EQ(startup_targets(decode_icr((u64{6} << 32) | startup, true), 0, v, true), 0b1000u);
    EXPECT_EQ(startup_targets(decode_icr((u64{0xFF} << 32) | startup, true), 0, v, true), 0u);
    EXPECT_EQ(startup_targets(decode_icr((u64{0xFFFFFFFF} << 32) | startup, true), 0, v, true),
              0xFu);
}

TEST(RootStartup, LinuxInitSipiSipiStartsAWaitingApOnce) {
    Cpus c;
    RootCpus v = c.view();
    // INIT assert and de-assert: the AP is in the INIT state already; nothing is sent.
    EXPECT_EQ(claim_startup_ipi(decode_icr(xapic(2, init_assert), false), v, 1),
              StartupAction::drop);
    EXPECT_EQ(claim_startup_ipi(decode_icr(xapic(2, init_deassert), false), v, 1),
              StartupAction::drop);
    EXPECT_EQ(c.state(1), ApState::waiting_for_sipi);
    // The first SIPI is sent; the second is dropped, before and after the SIPI exit.
    x86::IcrCommand sipi = decode_icr(xapic(2, startup | 0x9A), false);
    EXPECT_EQ(claim_startup_ipi(sipi, v, 1), StartupAction::send);
    EXPECT_EQ(c.state(1), ApState::sipi_sent);
    EXPECT_EQ(claim_startup_ipi(sipi, v, 1), StartupAction::drop);
    EXPECT_TRUE(on_sipi_exit(v, 1));
    EXPECT_EQ(c.state(1), ApState::running);
    EXPECT_EQ(claim_startup_ipi(sipi, v, 1), StartupAction::drop);
    // A CPU without a root vCPU gets nothing.
    EXPECT_EQ(claim_startup_ipi(decode_icr(xapic(6, startup), false), v, 3), StartupAction::drop);
    EXPECT_EQ(claim_startup_ipi(sipi, v, 9), StartupAction::drop);
    // Fixed, NMI and the rest are not this policy's.
    EXPECT_EQ(claim_startup_ipi(decode_icr(xapic(2, 0x4400), false), v, 1), StartupAction::drop);
    EXPECT_EQ(claim_startup_ipi(decode_icr(xapic(2, 0x00EF), false), v, 1), StartupAction::drop);
}

TEST(RootStartup, InitOfARunningCpuIsSentOnceAndItWaitsAgain) {
    Cpus c;
    RootCpus v = c.view();
    c.states[1] = u8(ApState::running);
    x86::IcrCommand init = decode_icr(xapic(2, init_assert), false);
    EXPECT_EQ(claim_startup_ipi(init, v, 1), StartupAction::send);
    EXPECT_EQ(c.state(1), ApState::init_sent);
    EXPECT_EQ(claim_startup_ipi(init, v, 1), StartupAction::drop);
    EXPECT_TRUE(on_init_exit(v, 1));
    EXPECT_EQ(c.state(1), ApState::waiting_for_sipi);
    // And it can be started again.
    EXPECT_EQ(claim_startup_ipi(decode_icr(xapic(2, startup | 0x10), false), v, 1),
              StartupAction::send);
}

TEST(RootStartup, ExitsNobodyAskedForAreReported) {
    Cpus c;
    RootCpus v = c.view();
    c.states[1] = u8(ApState::running);
    // Bochs 2.7 keeps INIT pending after the INIT exit: a second INIT exit nobody sent.
    EXPECT_FALSE(on_init_exit(v, 1));
    EXPECT_EQ(c.state(1), ApState::waiting_for_sipi);
    EXPECT_FALSE(on_sipi_exit(v, 2)); // a SIPI the policy did not send still starts it
    EXPECT_EQ(c.state(2), ApState::running);
    EXPECT_FALSE(on_init_exit(v, 7));
}

} // namespace
} // namespace godwit::hv::root
