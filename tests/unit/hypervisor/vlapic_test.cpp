// The virtual local APIC against a fake TSC and a recording bus: register semantics,
// priority and EOI, the LVT timer in all modes, the x2APIC MSR rules, APIC_BASE transitions,
// destination matching, IPIs, INIT/SIPI latching and save/restore.
#include "partition/vlapic.hpp"

#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace godwit::hv {
namespace {

// Records what leaves the APIC.
class RecordingBus final : public ApicBus {
  public:
    std::vector<ApicMessage> sent;
    std::vector<u8> eois;
    void deliver(const ApicMessage& m) override { sent.push_back(m); }
    void eoi_level(u8 vector) override { eois.push_back(vector); }
};

// Routes messages between a set of APICs the way a partition does.
class LoopbackBus final : public ApicBus {
  public:
    std::vector<VirtualLapic*> apics;
    std::vector<u8> eois;
    void deliver(const ApicMessage& m) override {
        for (VirtualLapic* apic : apics) {
            if (apic->matches(m))
                apic->accept(m);
        }
    }
    void eoi_level(u8 vector) override { eois.push_back(vector); }
};

constexpr u32 reg_id = 0x20;
constexpr u32 reg_version = 0x30;
constexpr u32 reg_tpr = 0x80;
constexpr u32 reg_ppr = 0xA0;
constexpr u32 reg_eoi = 0xB0;
constexpr u32 reg_ldr = 0xD0;
constexpr u32 reg_dfr = 0xE0;
constexpr u32 reg_svr = 0xF0;
constexpr u32 reg_isr = 0x100;
constexpr u32 reg_tmr = 0x180;
constexpr u32 reg_irr = 0x200;
constexpr u32 reg_esr = 0x280;
constexpr u32 reg_icr_low = 0x300;
constexpr u32 reg_icr_high = 0x310;
constexpr u32 reg_lvt_timer = 0x320;
constexpr u32 reg_lvt_lint0 = 0x350;
constexpr u32 reg_lvt_error = 0x370;
constexpr u32 reg_timer_initial = 0x380;
constexpr u32 reg_timer_current = 0x390;
constexpr u32 reg_timer_divide = 0x3E0;

constexpr u32 masked = 1u << 16;
constexpr u32 periodic = 1u << 17;
constexpr u32 tsc_deadline = 2u << 17;
constexpr u32 divide_by_1 = 0xB;

constexpr u64 x2apic_base =
    0xFEE00000 | VirtualLapic::apic_base_enable | VirtualLapic::apic_base_extd;
constexpr u64 xapic_base = 0xFEE00000 | VirtualLapic::apic_base_enable;

class VlapicTest : public ::testing::Test {
  protected:
    VirtualLapic apic;
    RecordingBus bus;

    void SetUp() override { apic.reset(3, false, 10); }
    void write(u32 offset, u32 value, u64 tsc = 0) { apic.mmio_write(offset, value, tsc, bus); }
    u32 read(u32 offset, u64 tsc = 0) { return apic.mmio_read(offset, tsc); }
    void enable(u32 spurious = 0xFF) { write(reg_svr, 0x100 | spurious); }
    void fixed(u8 vector, bool level = false) {
        ApicMessage m;
        m.vector = vector;
        m.level_triggered = level;
        apic.accept(m);
    }
    bool irr(u32 vector) { return (read(reg_irr + (vector / 32) * 0x10) >> (vector % 32)) & 1; }
    bool isr(u32 vector) { return (read(reg_isr + (vector / 32) * 0x10) >> (vector % 32)) & 1; }
    bool tmr(u32 vector) { return (read(reg_tmr + (vector / 32) * 0x10) >> (vector % 32)) & 1; }
    void to_x2apic() { ASSERT_TRUE(apic.msr_write(0x1B, x2apic_base, 0, bus)); }
    u64 rdmsr(u32 msr, u64 tsc = 0) {
        u64 value = 0xDEAD;
        EXPECT_TRUE(apic.msr_read(msr, value, tsc)) << std::hex << msr;
        return value;
    }
    bool rdmsr_faults(u32 msr) {
        u64 value = 0;
        return !apic.msr_read(msr, value, 0);
    }
};

// ---- reset and register semantics ----

TEST_F(VlapicTest, PowerOnState) {
    EXPECT_EQ(apic.apic_base_msr(), 0xFEE00800u);
    VirtualLapic bsp;
    bsp.reset(0, true, 1);
    EXPECT_EQ(bsp.apic_base_msr(), 0xFEE00900u);
    EXPECT_TRUE(apic.xapic_enabled());
    EXPECT_FALSE(apic.x2apic_enabled());
    EXPECT_FALSE(apic.software_enabled());
    EXPECT_EQ(apic.base_address(), 0xFEE00000u);
    EXPECT_EQ(read(reg_id), 3u << 24);
    EXPECT_EQ(read(reg_version), 0x00050014u);
    EXPECT_EQ(read(reg_svr), 0xFFu);
    EXPECT_EQ(read(reg_dfr), 0xFFFFFFFFu);
    EXPECT_EQ(read(reg_ldr), 0u);
    EXPECT_EQ(read(reg_tpr), 0u);
    for (u32 lvt = 0x320; lvt <= 0x370; lvt += 0x10)
        EXPECT_EQ(read(lvt), masked) << std::hex << lvt;
    EXPECT_EQ(apic.timer_deadline(), 0u);
}

TEST_F(VlapicTest, RegisterWriteMasksAndReadOnlyRegisters) {
    write(reg_tpr, 0xFFFFFF57);
    EXPECT_EQ(read(reg_tpr), 0x57u);
    EXPECT_EQ(apic.tpr(), 0x57u);
    write(reg_ldr, 0xFFFFFFFF);
    EXPECT_EQ(read(reg_ldr), 0xFF000000u);
    write(reg_dfr, 0x00000000);
    EXPECT_EQ(read(reg_dfr), 0x0FFFFFFFu); // model bits only; the rest reads 1
    write(reg_svr, 0xFFFFFFFF);
    EXPECT_EQ(read(reg_svr), 0x3FFu);
    write(reg_id, 0x07000000); // read-only in this model
    EXPECT_EQ(read(reg_id), 3u << 24);
    write(reg_version, 0);
    EXPECT_EQ(read(reg_version), 0x00050014u);
    write(reg_icr_high, 0xFFFFFFFF);
    EXPECT_EQ(read(reg_icr_high), 0xFF000000u);
    write(reg_timer_divide, 0xFFFFFFFF);
    EXPECT_EQ(read(reg_timer_divide), 0xBu);
    write(reg_lvt_timer, 0xFFFFFFFF);
    EXPECT_EQ(read(reg_lvt_timer), 0x000700FFu);
    write(reg_lvt_lint0, 0xFFFFFFFF);
    EXPECT_EQ(read(reg_lvt_lint0), 0x0001A7FFu); // remote IRR and delivery status read-only
    write(reg_lvt_error, 0xFFFFFFFF);
    EXPECT_EQ(read(reg_lvt_error), 0x000100FFu);
    // Reserved, write-only and unaligned offsets read 0.
    EXPECT_EQ(read(reg_eoi), 0u);
    EXPECT_EQ(read(0x2F0), 0u); // CMCI: not modelled
    EXPECT_EQ(read(0x3F0), 0u); // SELF IPI: x2APIC only
    EXPECT_EQ(read(0x24), 0u);
    EXPECT_EQ(read(0x800), 0u);
}

TEST_F(VlapicTest, SoftwareDisableMasksLvtsAndDropsFixedInterrupts) {
    write(reg_lvt_timer, 0x40); // unmask attempt while software-disabled
    EXPECT_EQ(read(reg_lvt_timer), masked | 0x40);
    enable();
    write(reg_lvt_timer, 0x40);
    write(reg_lvt_error, 0x41);
    EXPECT_EQ(read(reg_lvt_timer), 0x40u);
    write(reg_svr, 0xFF); // software disable sets every mask bit
    EXPECT_EQ(read(reg_lvt_timer), masked | 0x40);
    EXPECT_EQ(read(reg_lvt_error), masked | 0x41);
    fixed(0x50);
    EXPECT_FALSE(irr(0x50));
    ApicMessage nmi;
    nmi.mode = DeliveryMode::nmi;
    apic.accept(nmi);
    EXPECT_TRUE(apic.take_nmi()); // NMI, INIT and SIPI still arrive
    enable();
    EXPECT_EQ(read(reg_lvt_timer), masked | 0x40); // re-enabling does not unmask
}

// ---- priority, injection and EOI (SDM 10.8) ----

TEST_F(VlapicTest, ProcessorPriorityFromTprAndIsr) {
    enable();
    EXPECT_EQ(read(reg_ppr), 0u);
    write(reg_tpr, 0x25);
    EXPECT_EQ(read(reg_ppr), 0x25u);
    fixed(0x37);
    ASSERT_EQ(apic.pending_vector(0), 0x37);
    apic.acknowledge(0x37);
    EXPECT_EQ(read(reg_ppr), 0x30u); // ISR class beats TPR: PPR = ISRV[7:4] << 4
    write(reg_tpr, 0x3A);
    EXPECT_EQ(read(reg_ppr), 0x3Au); // TPR class >= ISR class: PPR = TPR
    write(reg_tpr, 0x41);
    EXPECT_EQ(apic.ppr(), 0x41u);
}

TEST_F(VlapicTest, TprMasksLowerOrEqualClasses) {
    enable();
    fixed(0x45);
    write(reg_tpr, 0x40);
    EXPECT_EQ(apic.pending_vector(0), -1); // same class as TPR: blocked
    write(reg_tpr, 0x4F);
    EXPECT_EQ(apic.pending_vector(0), -1);
    write(reg_tpr, 0x3F);
    EXPECT_EQ(apic.pending_vector(0), 0x45);
    apic.set_tpr(0x50); // the CR8 path
    EXPECT_EQ(apic.pending_vector(0), -1);
}

TEST_F(VlapicTest, HigherClassFirstAndInServiceBlocksItsClass) {
    enable();
    fixed(0x31);
    fixed(0x52);
    fixed(0x50);
    fixed(0x61);
    ASSERT_EQ(apic.pending_vector(0), 0x61);
    apic.acknowledge(0x61);
    EXPECT_FALSE(irr(0x61));
    EXPECT_TRUE(isr(0x61));
    EXPECT_EQ(apic.pending_vector(0), -1); // 0x52 is a lower class than 0x61 in service
    write(reg_eoi, 0);
    EXPECT_FALSE(isr(0x61));
    ASSERT_EQ(apic.pending_vector(0), 0x52);
    apic.acknowledge(0x52);
    EXPECT_EQ(apic.pending_vector(0), -1); // 0x50: same class as 0x52 in service
    write(reg_eoi, 0);
    ASSERT_EQ(apic.pending_vector(0), 0x50);
    apic.acknowledge(0x50);
    write(reg_eoi, 0);
    ASSERT_EQ(apic.pending_vector(0), 0x31);
    EXPECT_TRUE(bus.eois.empty()); // all edge-triggered
}

TEST_F(VlapicTest, NestedInServiceAndEoiRetiresHighest) {
    enable();
    fixed(0x40);
    apic.acknowledge(0x40);
    fixed(0x80);
    ASSERT_EQ(apic.pending_vector(0), 0x80); // a higher class preempts the one in service
    apic.acknowledge(0x80);
    EXPECT_TRUE(isr(0x40));
    EXPECT_TRUE(isr(0x80));
    write(reg_eoi, 0);
    EXPECT_TRUE(isr(0x40));
    EXPECT_FALSE(isr(0x80));
    write(reg_eoi, 0);
    EXPECT_FALSE(isr(0x40));
    write(reg_eoi, 0); // nothing in service: no effect
    EXPECT_EQ(read(reg_ppr), 0u);
}

TEST_F(VlapicTest, LevelTriggeredEoiReachesTheBus) {
    enable();
    fixed(0x71, true);
    fixed(0x72, false);
    EXPECT_TRUE(tmr(0x71));
    EXPECT_FALSE(tmr(0x72));
    apic.acknowledge(static_cast<u8>(apic.pending_vector(0))); // 0x72
    write(reg_eoi, 0);
    EXPECT_TRUE(bus.eois.empty());
    ASSERT_EQ(apic.pending_vector(0), 0x71);
    apic.acknowledge(0x71);
    write(reg_eoi, 0);
    ASSERT_EQ(bus.eois.size(), 1u);
    EXPECT_EQ(bus.eois[0], 0x71);
    fixed(0x71, false); // an edge delivery of the same vector clears TMR
    EXPECT_FALSE(tmr(0x71));
}

TEST_F(VlapicTest, IllegalVectorsSetEsrAndRaiseTheErrorInterrupt) {
    enable();
    fixed(0x05);
    EXPECT_FALSE(irr(0x05));
    EXPECT_EQ(read(reg_esr), 0u); // ESR shows errors only after a write latches them
    write(reg_esr, 0);
    EXPECT_EQ(read(reg_esr), 0x40u); // receive illegal vector
    write(reg_esr, 0);
    EXPECT_EQ(read(reg_esr), 0u);
    write(reg_lvt_error, 0xEE);
    write(reg_icr_low, 0x0A); // fixed IPI with vector 10: send illegal vector, not sent
    EXPECT_TRUE(bus.sent.empty());
    EXPECT_TRUE(irr(0xEE));
    write(reg_esr, 0);
    EXPECT_EQ(read(reg_esr), 0x20u);
}

// ---- timer (SDM 10.5.4) ----

TEST_F(VlapicTest, OneShotCountsAndFiresOnce) {
    enable();
    write(reg_timer_divide, divide_by_1); // 10 TSC cycles per count
    write(reg_lvt_timer, 0x30);
    write(reg_timer_initial, 100, 1000);
    EXPECT_EQ(apic.timer_deadline(), 2000u);
    EXPECT_EQ(read(reg_timer_current, 1000), 100u);
    EXPECT_EQ(read(reg_timer_current, 1009), 99u);
    EXPECT_EQ(read(reg_timer_current, 1010), 99u);
    EXPECT_EQ(read(reg_timer_current, 1500), 50u);
    EXPECT_EQ(read(reg_timer_current, 1999), 0u);
    EXPECT_EQ(read(reg_timer_initial, 1999), 100u);
    EXPECT_EQ(apic.pending_vector(1999), -1);
    EXPECT_EQ(apic.pending_vector(2000), 0x30);
    EXPECT_EQ(apic.timer_deadline(), 0u);
    apic.acknowledge(0x30);
    write(reg_eoi, 0, 2001);
    EXPECT_EQ(apic.pending_vector(100000), -1); // one-shot: no second interrupt
    EXPECT_EQ(read(reg_timer_current, 100000), 0u);
}

TEST_F(VlapicTest, PeriodicReloadsAndCollapsesMissedPeriods) {
    enable();
    write(reg_timer_divide, 0x0); // divide by 2: 20 TSC cycles per count
    write(reg_lvt_timer, periodic | 0x31);
    write(reg_timer_initial, 50, 0); // period 1000
    EXPECT_EQ(apic.timer_deadline(), 1000u);
    EXPECT_EQ(read(reg_timer_current, 500), 25u);
    EXPECT_EQ(apic.pending_vector(999), -1);
    EXPECT_EQ(apic.pending_vector(1000), 0x31);
    EXPECT_EQ(apic.timer_deadline(), 2000u);
    EXPECT_EQ(read(reg_timer_current, 1000), 50u);
    EXPECT_EQ(read(reg_timer_current, 1020), 49u);
    apic.acknowledge(0x31);
    write(reg_eoi, 0, 1100);
    // Four periods pass unobserved: one interrupt, and the next expiry is on the grid.
    EXPECT_EQ(apic.pending_vector(5500), 0x31);
    EXPECT_EQ(apic.timer_deadline(), 6000u);
    EXPECT_EQ(read(reg_timer_current, 5500), 25u);
}

TEST_F(VlapicTest, EveryDivideValue) {
    enable();
    write(reg_lvt_timer, 0x30);
    const struct {
        u32 config;
        u64 divisor;
    } divides[] = {{0x0, 2},  {0x1, 4},  {0x2, 8},   {0x3, 16},
                   {0x8, 32}, {0x9, 64}, {0xA, 128}, {0xB, 1}};
    for (const auto& d : divides) {
        write(reg_timer_divide, d.config);
        write(reg_timer_initial, 7, 1000);
        EXPECT_EQ(apic.timer_deadline(), 1000 + 7 * 10 * d.divisor) << d.config;
        EXPECT_EQ(read(reg_timer_current, 1000 + 10 * d.divisor), 6u) << d.config;
    }
}

TEST_F(VlapicTest, DivideChangeKeepsTheCountAndChangesTheRate) {
    enable();
    write(reg_lvt_timer, 0x30);
    write(reg_timer_divide, divide_by_1);
    write(reg_timer_initial, 100, 0);  // expires at 1000
    write(reg_timer_divide, 0x1, 400); // 60 counts left, now 40 cycles each
    EXPECT_EQ(read(reg_timer_current, 400), 60u);
    EXPECT_EQ(apic.timer_deadline(), 400u + 60 * 40);
    EXPECT_EQ(apic.pending_vector(2799), -1);
    EXPECT_EQ(apic.pending_vector(2800), 0x30);
}

TEST_F(VlapicTest, InitialCountZeroStopsTheTimer) {
    enable();
    write(reg_lvt_timer, periodic | 0x30);
    write(reg_timer_initial, 10, 0);
    EXPECT_NE(apic.timer_deadline(), 0u);
    write(reg_timer_initial, 0, 50);
    EXPECT_EQ(apic.timer_deadline(), 0u);
    EXPECT_EQ(read(reg_timer_current, 60), 0u);
    EXPECT_EQ(apic.pending_vector(1000000), -1);
}

TEST_F(VlapicTest, MaskedTimerCountsButDoesNotDeliver) {
    enable();
    write(reg_timer_divide, divide_by_1);
    write(reg_lvt_timer, masked | 0x30);
    write(reg_timer_initial, 100, 0);
    EXPECT_EQ(apic.timer_deadline(), 0u); // nothing to wake up for
    EXPECT_EQ(read(reg_timer_current, 300), 70u);
    EXPECT_EQ(apic.pending_vector(1500), -1);
    write(reg_lvt_timer, 0x30, 1600); // unmasking later does not deliver a past expiry
    EXPECT_EQ(apic.pending_vector(1700), -1);
    EXPECT_FALSE(irr(0x30));
    // Periodic while masked keeps its grid; unmasked it fires at the next grid point.
    write(reg_lvt_timer, masked | periodic | 0x30, 2000);
    write(reg_timer_initial, 100, 2000);
    EXPECT_EQ(apic.pending_vector(3500), -1);
    write(reg_lvt_timer, periodic | 0x30, 3500);
    EXPECT_EQ(apic.timer_deadline(), 4000u);
    EXPECT_EQ(apic.pending_vector(3999), -1);
    EXPECT_EQ(apic.pending_vector(4000), 0x30);
}

TEST_F(VlapicTest, TscDeadlineMode) {
    enable();
    u64 value = 0;
    EXPECT_TRUE(apic.msr_write(0x6E0, 5000, 0, bus)); // not in deadline mode: ignored
    EXPECT_TRUE(apic.msr_read(0x6E0, value, 0));
    EXPECT_EQ(value, 0u);
    write(reg_lvt_timer, tsc_deadline | 0x33);
    write(reg_timer_initial, 100, 0); // ignored in TSC-deadline mode
    EXPECT_EQ(read(reg_timer_initial), 0u);
    EXPECT_EQ(read(reg_timer_current, 10), 0u);
    EXPECT_TRUE(apic.msr_write(0x6E0, 5000, 10, bus));
    EXPECT_EQ(apic.timer_deadline(), 5000u);
    EXPECT_TRUE(apic.msr_read(0x6E0, value, 4999));
    EXPECT_EQ(value, 5000u);
    EXPECT_EQ(apic.pending_vector(4999), -1);
    EXPECT_EQ(apic.pending_vector(5000), 0x33);
    EXPECT_TRUE(apic.msr_read(0x6E0, value, 5001));
    EXPECT_EQ(value, 0u); // expiry clears the MSR
    EXPECT_EQ(apic.timer_deadline(), 0u);
    apic.acknowledge(0x33);
    write(reg_eoi, 0);
    // A deadline in the past fires at once; writing 0 disarms.
    EXPECT_TRUE(apic.msr_write(0x6E0, 100, 6000, bus));
    EXPECT_EQ(apic.pending_vector(6000), 0x33);
    apic.acknowledge(0x33);
    write(reg_eoi, 0);
    EXPECT_TRUE(apic.msr_write(0x6E0, 9000, 6000, bus));
    EXPECT_TRUE(apic.msr_write(0x6E0, 0, 6001, bus));
    EXPECT_EQ(apic.pending_vector(10000), -1);
    // Leaving TSC-deadline mode disarms.
    EXPECT_TRUE(apic.msr_write(0x6E0, 20000, 10000, bus));
    write(reg_lvt_timer, 0x33, 10000);
    write(reg_lvt_timer, tsc_deadline | 0x33, 10000);
    EXPECT_EQ(apic.timer_deadline(), 0u);
    EXPECT_EQ(apic.pending_vector(30000), -1);
}

TEST_F(VlapicTest, SwitchingIntoDeadlineModeStopsTheCount) {
    enable();
    write(reg_lvt_timer, 0x30);
    write(reg_timer_initial, 100, 0);
    write(reg_lvt_timer, tsc_deadline | 0x30, 10);
    EXPECT_EQ(read(reg_timer_initial), 0u);
    EXPECT_EQ(apic.pending_vector(100000), -1);
}

// ---- x2APIC MSR interface (SDM 10.12) ----

TEST_F(VlapicTest, X2apicMsrsFaultInXapicMode) {
    u64 value = 0;
    EXPECT_FALSE(apic.msr_read(0x802, value, 0));
    EXPECT_FALSE(apic.msr_write(0x808, 0, 0, bus));
    EXPECT_TRUE(VirtualLapic::owns_msr(0x1B));
    EXPECT_TRUE(VirtualLapic::owns_msr(0x6E0));
    EXPECT_TRUE(VirtualLapic::owns_msr(0x800));
    EXPECT_TRUE(VirtualLapic::owns_msr(0x8FF));
    EXPECT_FALSE(VirtualLapic::owns_msr(0x900));
    EXPECT_FALSE(VirtualLapic::owns_msr(0x10));
}

TEST_F(VlapicTest, X2apicRegisterAccessRules) {
    VirtualLapic big;
    big.reset(0x123, false, 1);
    ASSERT_TRUE(big.msr_write(0x1B, x2apic_base, 0, bus));
    u64 value = 0;
    ASSERT_TRUE(big.msr_read(0x802, value, 0));
    EXPECT_EQ(value, 0x123u); // 32-bit x2APIC id
    ASSERT_TRUE(big.msr_read(0x80D, value, 0));
    EXPECT_EQ(value, (0x12u << 16) | (1u << 3)); // LDR derived from the id
    ASSERT_TRUE(big.msr_read(0x803, value, 0));
    EXPECT_EQ(value, 0x00050014u);
    // Read-only registers fault on write.
    for (u32 msr : {0x802u, 0x803u, 0x80Au, 0x80Du, 0x810u, 0x818u, 0x820u, 0x827u, 0x839u})
        EXPECT_FALSE(big.msr_write(msr, 0, 0, bus)) << std::hex << msr;
    // Write-only and reserved registers fault on read; DFR, APR, RRD and ICR2 do not exist.
    for (u32 msr : {0x800u, 0x801u, 0x804u, 0x809u, 0x80Bu, 0x80Cu, 0x80Eu, 0x82Fu, 0x831u, 0x83Au,
                    0x83Fu, 0x840u, 0x8FFu}) {
        EXPECT_FALSE(big.msr_read(msr, value, 0)) << std::hex << msr;
    }
    for (u32 msr : {0x80Cu, 0x80Eu, 0x82Fu, 0x831u, 0x83Au, 0x840u})
        EXPECT_FALSE(big.msr_write(msr, 0, 0, bus)) << std::hex << msr;
    // Bits 63:32 are reserved except in the ICR; EOI and ESR take only 0.
    EXPECT_FALSE(big.msr_write(0x808, 1ull << 32, 0, bus));
    EXPECT_TRUE(big.msr_write(0x808, 0x20, 0, bus));
    ASSERT_TRUE(big.msr_read(0x808, value, 0));
    EXPECT_EQ(value, 0x20u);
    EXPECT_FALSE(big.msr_write(0x80B, 1, 0, bus));
    EXPECT_TRUE(big.msr_write(0x80B, 0, 0, bus));
    EXPECT_FALSE(big.msr_write(0x828, 1, 0, bus));
    EXPECT_TRUE(big.msr_write(0x828, 0, 0, bus));
    EXPECT_TRUE(big.msr_write(0x80F, 0x1FF, 0, bus));
    EXPECT_TRUE(big.software_enabled());
    // The MMIO page is gone in x2APIC mode.
    EXPECT_FALSE(big.xapic_enabled());
    EXPECT_EQ(big.mmio_read(reg_version, 0), 0u);
    big.mmio_write(reg_tpr, 0x90, 0, bus);
    EXPECT_EQ(big.tpr(), 0x20u);
}

TEST_F(VlapicTest, X2apicIcrIs64BitAndSelfIpi) {
    to_x2apic();
    ASSERT_TRUE(apic.msr_write(0x80F, 0x1FF, 0, bus));
    const u64 icr = (0x00012345ull << 32) | (1u << 11) | (1u << 14) | 0x4D; // logical, fixed
    ASSERT_TRUE(apic.msr_write(0x830, icr | (1u << 12), 0, bus));           // delivery status is RO
    ASSERT_EQ(bus.sent.size(), 1u);
    const ApicMessage& m = bus.sent[0];
    EXPECT_EQ(m.vector, 0x4D);
    EXPECT_EQ(m.mode, DeliveryMode::fixed);
    EXPECT_TRUE(m.logical);
    EXPECT_EQ(m.destination, 0x12345u);
    EXPECT_TRUE(m.x2apic_format);
    EXPECT_EQ(m.source_apic_id, 3u);
    EXPECT_EQ(m.shorthand, Shorthand::none);
    EXPECT_EQ(rdmsr(0x830), icr);
    ASSERT_TRUE(apic.msr_write(0x83F, 0x61, 0, bus));
    ASSERT_EQ(bus.sent.size(), 2u);
    EXPECT_EQ(bus.sent[1].vector, 0x61);
    EXPECT_EQ(bus.sent[1].shorthand, Shorthand::self);
    EXPECT_EQ(bus.sent[1].mode, DeliveryMode::fixed);
    EXPECT_TRUE(apic.matches(bus.sent[1]));
}

// ---- IA32_APIC_BASE (SDM 10.12.5) ----

TEST_F(VlapicTest, ApicBaseTransitions) {
    EXPECT_FALSE(apic.msr_write(0x1B, 0xFEE00000 | VirtualLapic::apic_base_extd, 0, bus));
    to_x2apic();
    EXPECT_TRUE(apic.x2apic_enabled());
    EXPECT_EQ(rdmsr(0x1B), x2apic_base);
    EXPECT_FALSE(apic.msr_write(0x1B, xapic_base, 0, bus)); // x2APIC -> xAPIC: #GP
    ASSERT_TRUE(apic.msr_write(0x80F, 0x1FF, 0, bus));
    ASSERT_TRUE(apic.msr_write(0x808, 0x40, 0, bus));
    ASSERT_TRUE(apic.msr_write(0x1B, 0xFEE00000, 0, bus)); // -> disabled
    EXPECT_FALSE(apic.hardware_enabled());
    EXPECT_FALSE(apic.msr_write(0x1B, x2apic_base, 0, bus)); // disabled -> x2APIC: #GP
    u64 value = 0;
    EXPECT_FALSE(apic.msr_read(0x802, value, 0));
    EXPECT_EQ(apic.pending_vector(0), -1);
    ASSERT_TRUE(apic.msr_write(0x1B, xapic_base, 0, bus)); // -> xAPIC
    EXPECT_TRUE(apic.xapic_enabled());
    EXPECT_EQ(read(reg_tpr), 0u); // state did not survive the disabled state
    EXPECT_EQ(read(reg_svr), 0xFFu);
    EXPECT_EQ(read(reg_id), 3u << 24);
    to_x2apic(); // and back up again
}

TEST_F(VlapicTest, ApicBaseReservedBitsAndRelocation) {
    EXPECT_FALSE(apic.msr_write(0x1B, xapic_base | 1, 0, bus));
    EXPECT_FALSE(apic.msr_write(0x1B, xapic_base | (1u << 9), 0, bus));
    EXPECT_FALSE(apic.msr_write(0x1B, xapic_base | (1ull << 40), 0, bus)); // above MAXPHYADDR 36
    apic.set_physical_address_bits(46);
    EXPECT_TRUE(
        apic.msr_write(0x1B, (1ull << 40) | 0xFED00000 | VirtualLapic::apic_base_enable, 0, bus));
    EXPECT_EQ(apic.base_address(), (1ull << 40) | 0xFED00000);
    EXPECT_TRUE(apic.msr_write(0x1B, xapic_base | VirtualLapic::apic_base_bsp, 0, bus));
    EXPECT_EQ(apic.apic_base_msr(), 0xFEE00900u);
}

TEST_F(VlapicTest, HardwareDisabledApicIsInert) {
    enable();
    fixed(0x44);
    ASSERT_TRUE(apic.msr_write(0x1B, 0xFEE00000, 0, bus));
    EXPECT_EQ(read(reg_version), 0u);
    ApicMessage m;
    m.destination = 3;
    m.vector = 0x50;
    EXPECT_FALSE(apic.matches(m));
    apic.accept(m);
    EXPECT_EQ(apic.pending_vector(0), -1);
    EXPECT_EQ(apic.timer_deadline(), 0u);
}

// ---- destinations (SDM 10.6.2) ----

ApicMessage to(u32 destination, bool logical, bool x2 = false) {
    ApicMessage m;
    m.vector = 0x40;
    m.destination = destination;
    m.logical = logical;
    m.x2apic_format = x2;
    m.source_apic_id = 99;
    return m;
}

TEST_F(VlapicTest, PhysicalDestinations) {
    EXPECT_TRUE(apic.matches(to(3, false)));
    EXPECT_FALSE(apic.matches(to(4, false)));
    EXPECT_TRUE(apic.matches(to(0xFF, false)));         // broadcast
    EXPECT_FALSE(apic.matches(to(0x103, false, true))); // beyond an xAPIC's 8 bits
    EXPECT_TRUE(apic.matches(to(0xFFFFFFFF, false, true)));
}

TEST_F(VlapicTest, FlatLogicalDestinations) {
    write(reg_ldr, 0x04000000);
    EXPECT_TRUE(apic.matches(to(0x04, true)));
    EXPECT_TRUE(apic.matches(to(0x0C, true)));
    EXPECT_FALSE(apic.matches(to(0x08, true)));
    EXPECT_FALSE(apic.matches(to(0x03, true))); // id 3 is not logical bit 2
    EXPECT_TRUE(apic.matches(to(0xFF, true)));
    write(reg_ldr, 0);
    EXPECT_FALSE(apic.matches(to(0x7F, true)));
}

TEST_F(VlapicTest, ClusterLogicalDestinations) {
    write(reg_dfr, 0x0FFFFFFF); // cluster model
    write(reg_ldr, 0x21000000); // cluster 2, member bit 0
    EXPECT_TRUE(apic.matches(to(0x21, true)));
    EXPECT_TRUE(apic.matches(to(0x23, true)));
    EXPECT_FALSE(apic.matches(to(0x22, true)));
    EXPECT_FALSE(apic.matches(to(0x11, true)));
    EXPECT_TRUE(apic.matches(to(0xFF, true)));
    write(reg_dfr, 0x5FFFFFFF); // undefined model: nothing matches logically
    EXPECT_FALSE(apic.matches(to(0x21, true)));
}

TEST_F(VlapicTest, X2apicClusterDestinations) {
    VirtualLapic x2;
    x2.reset(0x23, false, 1);
    ASSERT_TRUE(x2.msr_write(0x1B, x2apic_base, 0, bus));
    EXPECT_TRUE(x2.matches(to((2u << 16) | 0x8, true, true)));
    EXPECT_TRUE(x2.matches(to((2u << 16) | 0xFF0F, true, true)));
    EXPECT_FALSE(x2.matches(to((2u << 16) | 0x4, true, true)));
    EXPECT_FALSE(x2.matches(to((3u << 16) | 0x8, true, true)));
    EXPECT_TRUE(x2.matches(to(0xFFFFFFFF, true, true)));
    EXPECT_TRUE(x2.matches(to(0x23, false, true)));
    EXPECT_FALSE(x2.matches(to(0x24, false, true)));
    EXPECT_TRUE(x2.matches(to(0xFFFFFFFF, false, true)));
    EXPECT_TRUE(x2.matches(to(0xFF, false, false))); // an IOAPIC broadcast reaches x2APICs
    EXPECT_TRUE(x2.matches(to(0x23, false, false)));
}

TEST_F(VlapicTest, Shorthands) {
    ApicMessage m = to(0, false);
    m.shorthand = Shorthand::self;
    m.source_apic_id = 3;
    EXPECT_TRUE(apic.matches(m));
    m.source_apic_id = 4;
    EXPECT_FALSE(apic.matches(m));
    m.shorthand = Shorthand::all_including_self;
    EXPECT_TRUE(apic.matches(m));
    m.source_apic_id = 3;
    EXPECT_TRUE(apic.matches(m));
    m.shorthand = Shorthand::all_excluding_self;
    EXPECT_FALSE(apic.matches(m));
    m.source_apic_id = 4;
    EXPECT_TRUE(apic.matches(m));
}

// ---- IPIs (SDM 10.6.1) ----

TEST_F(VlapicTest, XapicIcrSendsAndNeverStaysPending) {
    write(reg_icr_high, 0x05000000);
    write(reg_icr_low, (3u << 18) | (1u << 15) | (1u << 14) | (1u << 11) | 0x4A);
    ASSERT_EQ(bus.sent.size(), 1u);
    const ApicMessage& m = bus.sent[0];
    EXPECT_EQ(m.vector, 0x4A);
    EXPECT_EQ(m.destination, 5u);
    EXPECT_TRUE(m.logical);
    EXPECT_FALSE(m.level_triggered); // the trigger bit only qualifies INIT de-assert
    EXPECT_EQ(m.shorthand, Shorthand::all_excluding_self);
    EXPECT_FALSE(m.x2apic_format);
    EXPECT_EQ(m.source_apic_id, 3u);
    EXPECT_EQ(read(reg_icr_low) & (1u << 12), 0u); // delivery status idle
    EXPECT_EQ(read(reg_icr_low), (3u << 18) | (1u << 15) | (1u << 14) | (1u << 11) | 0x4A);
    // INIT level de-assert and the reserved delivery mode send nothing.
    write(reg_icr_low, (1u << 15) | (5u << 8));
    write(reg_icr_low, (3u << 8) | 0x40);
    EXPECT_EQ(bus.sent.size(), 1u);
    // INIT assert, SIPI and NMI go out with their modes.
    write(reg_icr_low, (1u << 15) | (1u << 14) | (5u << 8));
    write(reg_icr_low, (6u << 8) | 0x9A);
    write(reg_icr_low, (4u << 8));
    ASSERT_EQ(bus.sent.size(), 4u);
    EXPECT_EQ(bus.sent[1].mode, DeliveryMode::init);
    EXPECT_EQ(bus.sent[2].mode, DeliveryMode::startup);
    EXPECT_EQ(bus.sent[2].vector, 0x9A);
    EXPECT_EQ(bus.sent[3].mode, DeliveryMode::nmi);
}

TEST_F(VlapicTest, IpisBetweenApicsThroughAPartitionBus) {
    VirtualLapic a, b, c;
    a.reset(0, true, 1);
    b.reset(1, false, 1);
    c.reset(2, false, 1);
    LoopbackBus loop;
    loop.apics = {&a, &b, &c};
    for (VirtualLapic* x : loop.apics)
        x->mmio_write(reg_svr, 0x1FF, 0, loop);
    a.mmio_write(reg_icr_high, 1u << 24, 0, loop);
    a.mmio_write(reg_icr_low, 0x51, 0, loop);
    EXPECT_EQ(a.pending_vector(0), -1);
    EXPECT_EQ(b.pending_vector(0), 0x51);
    EXPECT_EQ(c.pending_vector(0), -1);
    c.mmio_write(reg_icr_low, (3u << 18) | 0x62, 0, loop); // all excluding self
    EXPECT_EQ(a.pending_vector(0), 0x62);
    EXPECT_EQ(b.pending_vector(0), 0x62);
    EXPECT_EQ(c.pending_vector(0), -1);
    c.mmio_write(reg_icr_low, (1u << 18) | 0x73, 0, loop); // self
    EXPECT_EQ(c.pending_vector(0), 0x73);
    EXPECT_EQ(b.pending_vector(0), 0x62);
}

// ---- INIT, SIPI, NMI ----

TEST_F(VlapicTest, InitSipiNmiAreLatchedAndTakenOnce) {
    u8 vector = 0;
    EXPECT_FALSE(apic.take_init());
    EXPECT_FALSE(apic.take_sipi(vector));
    EXPECT_FALSE(apic.take_nmi());
    ApicMessage m;
    m.mode = DeliveryMode::init;
    m.level_triggered = true;
    m.assert_level = false; // de-assert: ignored
    apic.accept(m);
    EXPECT_FALSE(apic.take_init());
    m.assert_level = true;
    apic.accept(m);
    EXPECT_TRUE(apic.take_init());
    EXPECT_FALSE(apic.take_init());
    m.mode = DeliveryMode::startup;
    m.vector = 0x9F;
    apic.accept(m);
    ASSERT_TRUE(apic.take_sipi(vector));
    EXPECT_EQ(vector, 0x9F);
    EXPECT_FALSE(apic.take_sipi(vector));
    m.mode = DeliveryMode::nmi;
    apic.accept(m);
    EXPECT_TRUE(apic.take_nmi());
    EXPECT_FALSE(apic.take_nmi());
    m.mode = DeliveryMode::smi; // not supported
    apic.accept(m);
    m.mode = DeliveryMode::ext_int;
    apic.accept(m);
    EXPECT_FALSE(apic.take_nmi());
    EXPECT_FALSE(apic.take_init());
}

TEST_F(VlapicTest, InitResetsRegistersButKeepsIdModeAndLatchedSipi) {
    to_x2apic();
    ASSERT_TRUE(apic.msr_write(0x80F, 0x1FF, 0, bus));
    ASSERT_TRUE(apic.msr_write(0x808, 0x30, 0, bus));
    ASSERT_TRUE(apic.msr_write(0x832, 0x40, 0, bus));
    fixed(0x50);
    ApicMessage sipi;
    sipi.mode = DeliveryMode::startup;
    sipi.vector = 0x10;
    apic.accept(sipi);
    apic.init();
    EXPECT_TRUE(apic.x2apic_enabled());
    EXPECT_EQ(rdmsr(0x802), 3u);
    EXPECT_EQ(rdmsr(0x808), 0u);
    EXPECT_EQ(rdmsr(0x80F), 0xFFu);
    EXPECT_EQ(rdmsr(0x832), masked);
    EXPECT_EQ(rdmsr(0x820 + 2), 0u);
    EXPECT_EQ(apic.pending_vector(0), -1);
    u8 vector = 0;
    ASSERT_TRUE(apic.take_sipi(vector));
    EXPECT_EQ(vector, 0x10);
}

// ---- save/restore ----

// A busy xAPIC: periodic timer mid-period, interrupts pending and in service, errors.
void make_busy(VirtualLapic& a, ApicBus& bus, u64 now) {
    a.reset(3, false, 10);
    a.mmio_write(reg_svr, 0x1FF, now, bus);
    a.mmio_write(reg_tpr, 0x20, now, bus);
    a.mmio_write(reg_ldr, 0x08000000, now, bus);
    a.mmio_write(reg_dfr, 0x0FFFFFFF, now, bus);
    a.mmio_write(reg_lvt_error, 0xFE, now, bus);
    a.mmio_write(reg_timer_divide, 0x1, now, bus);
    a.mmio_write(reg_lvt_timer, periodic | 0x30, now, bus);
    a.mmio_write(reg_timer_initial, 1000, now - 12345, bus);
    a.mmio_write(reg_icr_high, 0x07000000, now, bus);
    ApicMessage m;
    m.vector = 0x91;
    m.level_triggered = true;
    a.accept(m);
    a.acknowledge(static_cast<u8>(a.pending_vector(now)));
    m.vector = 0x45;
    m.level_triggered = false;
    a.accept(m);
    m.vector = 0x03; // receive illegal vector
    a.accept(m);
    m.mode = DeliveryMode::startup;
    m.vector = 0x12;
    a.accept(m);
}

TEST_F(VlapicTest, SaveRestoreRoundTrip) {
    const u64 t0 = 1'000'000;
    make_busy(apic, bus, t0);
    VirtualLapic::State s{};
    apic.save(s, t0);
    EXPECT_EQ(s.timer_armed, 1);
    EXPECT_EQ(s.timer_remaining, 40000u - 12345u % 40000u);

    // Restore at a different TSC: the timer keeps its remaining cycles.
    const u64 t1 = 77'000'000;
    VirtualLapic copy;
    copy.reset(3, true, 99);
    ASSERT_TRUE(copy.restore(s, t1));
    VirtualLapic::State again{};
    copy.save(again, t1);
    EXPECT_EQ(std::memcmp(&s, &again, sizeof(s)), 0);
    for (u32 offset = 0; offset < 0x400; offset += 0x10) {
        EXPECT_EQ(copy.mmio_read(offset, t1 + 500), apic.mmio_read(offset, t0 + 500))
            << std::hex << offset;
    }
    EXPECT_EQ(copy.timer_deadline() - t1, apic.timer_deadline() - t0);
    EXPECT_EQ(copy.pending_vector(t1), apic.pending_vector(t0));
    u8 v1 = 0, v2 = 0;
    EXPECT_TRUE(copy.take_sipi(v1));
    EXPECT_TRUE(apic.take_sipi(v2));
    EXPECT_EQ(v1, v2);
    // EOI of the level-triggered vector in service still reaches the bus after restore.
    copy.mmio_write(reg_eoi, 0, t1, bus);
    ASSERT_EQ(bus.eois.size(), 1u);
    EXPECT_EQ(bus.eois[0], 0x91);
}

TEST_F(VlapicTest, SaveRestoreTscDeadlineAndX2apic) {
    to_x2apic();
    ASSERT_TRUE(apic.msr_write(0x80F, 0x1FF, 0, bus));
    ASSERT_TRUE(apic.msr_write(0x832, tsc_deadline | 0x30, 0, bus));
    ASSERT_TRUE(apic.msr_write(0x6E0, 123456, 100, bus));
    ASSERT_TRUE(apic.msr_write(0x830, (7ull << 32) | 0x44, 100, bus));
    VirtualLapic::State s{};
    apic.save(s, 1000);
    EXPECT_EQ(s.tsc_deadline, 123456u);
    EXPECT_EQ(s.timer_armed, 0);
    VirtualLapic copy;
    copy.reset(3, false, 10);
    ASSERT_TRUE(copy.restore(s, 2000));
    EXPECT_TRUE(copy.x2apic_enabled());
    EXPECT_EQ(copy.timer_deadline(), 123456u); // absolute guest TSC
    u64 value = 0;
    ASSERT_TRUE(copy.msr_read(0x830, value, 2000));
    EXPECT_EQ(value, (7ull << 32) | 0x44);
    EXPECT_EQ(copy.pending_vector(123455), -1);
    EXPECT_EQ(copy.pending_vector(123456), 0x30);
}

TEST_F(VlapicTest, RestoreRejectsBadStatesAndChangesNothing) {
    make_busy(apic, bus, 50000);
    VirtualLapic::State good{};
    apic.save(good, 50000);
    VirtualLapic target;
    target.reset(3, false, 10);
    VirtualLapic::State before{};
    target.save(before, 0);

    auto rejects = [&](auto mutate, const char* what) {
        VirtualLapic::State s = good;
        mutate(s);
        EXPECT_FALSE(target.restore(s, 0)) << what;
        VirtualLapic::State after{};
        target.save(after, 0);
        EXPECT_EQ(std::memcmp(&before, &after, sizeof(before)), 0) << what;
    };
    rejects([](auto& s) { s.format = 2; }, "format");
    rejects([](auto& s) { s.size = 0; }, "size");
    rejects([](auto& s) { s.apic_id = 4; }, "another vCPU's state");
    rejects([](auto& s) { s.tsc_per_bus_tick = 0; }, "zero bus clock");
    rejects([](auto& s) { s.apic_base |= 1; }, "APIC_BASE reserved bit");
    rejects([](auto& s) { s.apic_base = 0xFEE00000 | VirtualLapic::apic_base_extd; },
            "EN=0 EXTD=1");
    rejects([](auto& s) { s.tpr = 0x100; }, "TPR");
    rejects([](auto& s) { s.ldr |= 1; }, "LDR reserved");
    rejects([](auto& s) { s.dfr = 0; }, "DFR low bits");
    rejects([](auto& s) { s.svr |= 1u << 12; }, "SVR reserved");
    rejects([](auto& s) { s.esr |= 1; }, "ESR unknown");
    rejects([](auto& s) { s.icr_low |= 1u << 12; }, "ICR delivery status");
    rejects([](auto& s) { s.icr_high |= 1; }, "xAPIC ICR destination");
    rejects([](auto& s) { s.lvt[2] |= 1u << 20; }, "LVT reserved");
    rejects([](auto& s) { s.svr &= ~0x100u; }, "unmasked LVT while software-disabled");
    rejects([](auto& s) { s.timer_divide = 4; }, "divide reserved");
    rejects([](auto& s) { s.irr[0] = 1; }, "IRR vector 0");
    rejects([](auto& s) { s.isr[0] = 0x8000; }, "ISR vector 15");
    rejects([](auto& s) { s.timer_remaining = 1000ull * 40 + 1; }, "remaining beyond a period");
    rejects([](auto& s) { s.timer_armed = 2; }, "armed flag");
    rejects([](auto& s) { s.timer_initial_count = 0; }, "armed without a count");
    rejects([](auto& s) { s.tsc_deadline = 5; }, "deadline outside deadline mode");
    rejects([](auto& s) { s.nmi_pending = 7; }, "NMI flag");
    rejects([](auto& s) { s.reserved[1] = 1; }, "reserved bytes");
    EXPECT_TRUE(target.restore(good, 0));
}

// Random corruptions of a valid state: whatever restore accepts must save back identically.
TEST_F(VlapicTest, RestoreIsClosedUnderRandomCorruption) {
    make_busy(apic, bus, 50000);
    VirtualLapic::State good{};
    apic.save(good, 50000);
    std::mt19937 rng(7);
    int accepted = 0;
    for (int i = 0; i < 20000; ++i) {
        VirtualLapic::State s = good;
        unsigned char* bytes = reinterpret_cast<unsigned char*>(&s);
        const int flips = 1 + static_cast<int>(rng() % 3);
        for (int f = 0; f < flips; ++f)
            bytes[rng() % sizeof(s)] ^= static_cast<unsigned char>(1u << (rng() % 8));
        VirtualLapic target;
        target.reset(3, false, 10);
        if (!target.restore(s, 1234))
            continue;
        ++accepted;
        VirtualLapic::State back{};
        target.save(back, 1234);
        ASSERT_EQ(std::memcmp(&s, &back, sizeof(s)), 0) << "iteration " << i;
    }
    EXPECT_GT(accepted, 0); // some flips (vectors, TPR, timer count) are valid states
}

// A hostile guest: random register, MSR and message traffic at random (monotonic) times.
// Every state it reaches must save and restore to an identical APIC, and the selected
// vector must always be a legal one.
TEST(VlapicRandomTraffic, EveryReachableStateRoundTrips) {
    std::mt19937_64 rng(2026);
    RecordingBus bus;
    const u32 offsets[] = {0x20,  0x30,  0x80,  0xA0,  0xB0,  0xD0,  0xE0,  0xF0,
                           0x100, 0x200, 0x280, 0x300, 0x310, 0x320, 0x330, 0x370,
                           0x380, 0x390, 0x3E0, 0x3F0, 0x2F0, 0x24};
    const u32 msrs[] = {0x1B,  0x6E0, 0x802, 0x808, 0x80B, 0x80D, 0x80F, 0x828,
                        0x830, 0x832, 0x837, 0x838, 0x839, 0x83E, 0x83F, 0x80E};
    const u64 bases[] = {xapic_base, x2apic_base, 0xFEE00000, 0xFEE00000 | (1ull << 10)};
    int injected = 0, x2apic_steps = 0, timer_steps = 0;
    for (int run = 0; run < 40; ++run) {
        VirtualLapic apic;
        apic.reset(5, run % 2 == 0, 1 + static_cast<u32>(rng() % 50));
        u64 now = rng() % 1000000;
        for (int step = 0; step < 400; ++step) {
            now += rng() % 5000;
            // Values biased towards the interesting bits (enable, modes, small counts).
            u64 value = rng();
            if (rng() % 2)
                value &= 0x000F11FF;
            switch (rng() % 9) {
            case 0:
            case 1:
                apic.mmio_write(offsets[rng() % std::size(offsets)], static_cast<u32>(value), now,
                                bus);
                break;
            case 2:
                apic.mmio_read(offsets[rng() % std::size(offsets)], now);
                break;
            case 3: {
                const u32 msr = msrs[rng() % std::size(msrs)];
                apic.msr_write(msr, msr == 0x1B ? bases[rng() % 4] : value, now, bus);
                break;
            }
            case 4: {
                u64 out = 0;
                apic.msr_read(msrs[rng() % std::size(msrs)], out, now);
                break;
            }
            case 5: {
                ApicMessage m;
                m.vector = static_cast<u8>(rng());
                m.mode = static_cast<DeliveryMode>(rng() % 8 == 3 ? 0 : rng() % 8);
                m.level_triggered = rng() % 2;
                m.assert_level = rng() % 4 != 0;
                apic.accept(m);
                break;
            }
            case 6: {
                const int vector = apic.pending_vector(now);
                ASSERT_TRUE(vector == -1 || (vector >= 16 && vector <= 255)) << vector;
                if (vector >= 0) {
                    apic.acknowledge(static_cast<u8>(vector));
                    ++injected;
                }
                break;
            }
            case 7:
                if (rng() % 8 == 0) {
                    apic.init();
                } else { // software-enable and EOI, in whichever mode is live
                    apic.mmio_write(0xF0, 0x1FF, now, bus);
                    apic.msr_write(0x80F, 0x1FF, now, bus);
                    apic.mmio_write(0xB0, 0, now, bus);
                    apic.msr_write(0x80B, 0, now, bus);
                }
                break;
            default: {
                u8 sipi = 0;
                apic.take_nmi();
                apic.take_sipi(sipi);
                break;
            }
            }
            VirtualLapic::State s{};
            apic.save(s, now);
            VirtualLapic copy;
            copy.reset(5, false, 1);
            ASSERT_TRUE(copy.restore(s, now)) << "run " << run << " step " << step;
            VirtualLapic::State back{};
            copy.save(back, now);
            ASSERT_EQ(std::memcmp(&s, &back, sizeof(s)), 0) << "run " << run << " step " << step;
            ASSERT_EQ(copy.timer_deadline(), apic.timer_deadline());
            x2apic_steps += apic.x2apic_enabled();
            timer_steps += s.timer_armed != 0 || s.tsc_deadline != 0;
        }
    }
    // The traffic reaches the interesting states.
    EXPECT_GT(injected, 100);
    EXPECT_GT(x2apic_steps, 1000);
    EXPECT_GT(timer_steps, 1000);
}

} // namespace
} // namespace godwit::hv
