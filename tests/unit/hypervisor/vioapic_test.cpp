// The virtual IOAPIC: the IOREGSEL/IOWIN window, redirection entries, edge and level pins
// with remote IRR, masking, EOI redelivery, the round trip through a local APIC, and
// save/restore.
#include "partition/vioapic.hpp"

#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace godwit::hv {
namespace {

class RecordingBus final : public ApicBus {
  public:
    std::vector<ApicMessage> sent;
    std::vector<u8> eois;
    void deliver(const ApicMessage& m) override { sent.push_back(m); }
    void eoi_level(u8 vector) override { eois.push_back(vector); }
};

constexpr u64 masked = 1ull << 16;
constexpr u64 level = 1ull << 15;
constexpr u64 remote_irr = 1ull << 14;
constexpr u64 logical = 1ull << 11;

class VioapicTest : public ::testing::Test {
  protected:
    VirtualIoapic ioapic;
    RecordingBus bus;

    void SetUp() override { ioapic.reset(2); }
    u32 read_index(u32 index) {
        ioapic.mmio_write(0x00, index, bus);
        return ioapic.mmio_read(0x10);
    }
    void write_index(u32 index, u32 value) {
        ioapic.mmio_write(0x00, index, bus);
        ioapic.mmio_write(0x10, value, bus);
    }
    void program(u32 pin, u64 entry) {
        write_index(0x11 + 2 * pin, static_cast<u32>(entry >> 32));
        write_index(0x10 + 2 * pin, static_cast<u32>(entry));
    }
    u64 entry(u32 pin) {
        return (static_cast<u64>(read_index(0x11 + 2 * pin)) << 32) | read_index(0x10 + 2 * pin);
    }
};

TEST_F(VioapicTest, RegisterWindow) {
    ioapic.mmio_write(0x00, 0x1234, bus);
    EXPECT_EQ(ioapic.mmio_read(0x00), 0x34u); // IOREGSEL is 8 bits
    EXPECT_EQ(read_index(0), 2u << 24);
    EXPECT_EQ(read_index(1), 0x00170011u);
    EXPECT_EQ(read_index(2), 2u << 24); // arbitration id follows the id
    write_index(0, 0xFFFFFFFF);
    EXPECT_EQ(read_index(0), 0x0F000000u);
    EXPECT_EQ(read_index(2), 0x0F000000u);
    write_index(1, 0);
    EXPECT_EQ(read_index(1), 0x00170011u);
    write_index(2, 0);
    EXPECT_EQ(read_index(2), 0x0F000000u);
    EXPECT_EQ(read_index(3), 0u);
    EXPECT_EQ(read_index(0x0F), 0u);
    EXPECT_EQ(read_index(0x40), 0u); // past pin 23
    EXPECT_EQ(ioapic.mmio_read(0x04), 0u);
    EXPECT_EQ(ioapic.mmio_read(0x20), 0u);
    EXPECT_EQ(ioapic.mmio_read(0x40), 0u); // no EOI register in version 0x11
}

TEST_F(VioapicTest, RedirectionEntriesResetMaskedAndMaskReadOnlyBits) {
    for (u32 pin = 0; pin < VirtualIoapic::pin_count; ++pin)
        EXPECT_EQ(entry(pin), masked) << pin;
    write_index(0x10 + 2 * 5, 0xFFFFFFFF);
    write_index(0x11 + 2 * 5, 0xFFFFFFFF);
    // Delivery status (12), remote IRR (14) and bits 55:17 are not writable.
    EXPECT_EQ(entry(5), 0xFF00000000000000ull | 0x1AFFF);
    EXPECT_EQ(ioapic.redirection_entry(5), entry(5));
    EXPECT_EQ(ioapic.redirection_entry(24), 0u);
    program(23, (0x07ull << 56) | logical | 0x2000 | (1u << 8) | 0x61);
    EXPECT_EQ(entry(23), (0x07ull << 56) | logical | 0x2000 | (1u << 8) | 0x61);
}

TEST_F(VioapicTest, EdgePinDeliversOnRisingEdges) {
    program(4, (0x03ull << 56) | logical | 0x34);
    ioapic.set_irq(4, true, bus);
    ASSERT_EQ(bus.sent.size(), 1u);
    const ApicMessage& m = bus.sent[0];
    EXPECT_EQ(m.vector, 0x34);
    EXPECT_EQ(m.mode, DeliveryMode::fixed);
    EXPECT_TRUE(m.logical);
    EXPECT_FALSE(m.level_triggered);
    EXPECT_EQ(m.destination, 3u);
    EXPECT_FALSE(m.x2apic_format);
    EXPECT_EQ(m.source_apic_id, ioapic_source_id);
    EXPECT_EQ(m.shorthand, Shorthand::none);
    ioapic.set_irq(4, true, bus); // still high: no new edge
    EXPECT_EQ(bus.sent.size(), 1u);
    ioapic.set_irq(4, false, bus);
    ioapic.set_irq(4, true, bus);
    EXPECT_EQ(bus.sent.size(), 2u);
    EXPECT_EQ(entry(4) & remote_irr, 0u); // edge pins hold no remote IRR
    ioapic.eoi(0x34, bus);
    EXPECT_EQ(bus.sent.size(), 2u);
}

TEST_F(VioapicTest, MaskedEdgeIsLost) {
    program(6, masked | 0x36);
    ioapic.set_irq(6, true, bus);
    program(6, 0x36); // unmasking does not replay the edge
    EXPECT_TRUE(bus.sent.empty());
    ioapic.set_irq(6, false, bus);
    ioapic.set_irq(6, true, bus);
    EXPECT_EQ(bus.sent.size(), 1u);
}

TEST_F(VioapicTest, LevelPinHoldsRemoteIrrUntilEoi) {
    program(9, level | 0x49);
    ioapic.set_irq(9, true, bus);
    ASSERT_EQ(bus.sent.size(), 1u);
    EXPECT_TRUE(bus.sent[0].level_triggered);
    EXPECT_NE(entry(9) & remote_irr, 0u);
    ioapic.set_irq(9, true, bus); // in service: no second delivery
    EXPECT_EQ(bus.sent.size(), 1u);
    ioapic.eoi(0x48, bus); // another vector
    EXPECT_NE(entry(9) & remote_irr, 0u);
    ioapic.eoi(0x49, bus); // still asserted: delivered again
    EXPECT_EQ(bus.sent.size(), 2u);
    EXPECT_NE(entry(9) & remote_irr, 0u);
    ioapic.set_irq(9, false, bus);
    ioapic.eoi(0x49, bus); // released: remote IRR clears, nothing more
    EXPECT_EQ(bus.sent.size(), 2u);
    EXPECT_EQ(entry(9) & remote_irr, 0u);
    ioapic.set_irq(9, true, bus);
    EXPECT_EQ(bus.sent.size(), 3u);
}

TEST_F(VioapicTest, MaskedLevelPinDeliversWhenUnmasked) {
    program(10, masked | level | 0x4A);
    ioapic.set_irq(10, true, bus);
    EXPECT_TRUE(bus.sent.empty());
    write_index(0x11 + 2 * 10, 0x01000000); // the high half alone does not deliver
    EXPECT_TRUE(bus.sent.empty());
    write_index(0x10 + 2 * 10, level | 0x4A);
    ASSERT_EQ(bus.sent.size(), 1u);
    EXPECT_EQ(bus.sent[0].destination, 1u);
    // Masked while in service: the EOI clears remote IRR but does not deliver.
    write_index(0x10 + 2 * 10, masked | level | 0x4A);
    ioapic.eoi(0x4A, bus);
    EXPECT_EQ(entry(10) & remote_irr, 0u);
    EXPECT_EQ(bus.sent.size(), 1u);
}

TEST_F(VioapicTest, SwitchingToEdgeClearsRemoteIrr) {
    program(11, level | 0x4B);
    ioapic.set_irq(11, true, bus);
    ASSERT_NE(entry(11) & remote_irr, 0u);
    write_index(0x10 + 2 * 11, 0x4B);
    EXPECT_EQ(entry(11) & remote_irr, 0u);
}

TEST_F(VioapicTest, EoiClearsEveryPinSharingTheVector) {
    program(1, level | 0x51);
    program(2, level | 0x51);
    ioapic.set_irq(1, true, bus);
    ioapic.set_irq(2, true, bus);
    ASSERT_EQ(bus.sent.size(), 2u);
    ioapic.set_irq(1, false, bus);
    ioapic.set_irq(2, false, bus);
    ioapic.eoi(0x51, bus);
    EXPECT_EQ(entry(1) & remote_irr, 0u);
    EXPECT_EQ(entry(2) & remote_irr, 0u);
    EXPECT_EQ(bus.sent.size(), 2u);
}

TEST_F(VioapicTest, NonFixedModesAndBadPins) {
    program(3, level | (4u << 8)); // NMI: no remote IRR even if programmed level
    ioapic.set_irq(3, true, bus);
    ASSERT_EQ(bus.sent.size(), 1u);
    EXPECT_EQ(bus.sent[0].mode, DeliveryMode::nmi);
    EXPECT_EQ(entry(3) & remote_irr, 0u);
    program(7, 3u << 8); // reserved delivery mode: nothing sent
    ioapic.set_irq(7, true, bus);
    ioapic.set_irq(24, true, bus);
    ioapic.set_irq(1000, true, bus);
    EXPECT_EQ(bus.sent.size(), 1u);
}

// The full level-triggered path: IOAPIC -> LAPIC (TMR) -> injection -> EOI -> IOAPIC.
class PartitionBus final : public ApicBus {
  public:
    VirtualLapic lapic;
    VirtualIoapic ioapic;
    int delivered = 0;
    void deliver(const ApicMessage& m) override {
        if (lapic.matches(m)) {
            lapic.accept(m);
            ++delivered;
        }
    }
    void eoi_level(u8 vector) override { ioapic.eoi(vector, *this); }
};

TEST(VioapicLapic, LevelInterruptRoundTrip) {
    PartitionBus p;
    p.lapic.reset(0, true, 1);
    p.ioapic.reset(0);
    p.lapic.mmio_write(0xF0, 0x1FF, 0, p);
    p.ioapic.mmio_write(0x00, 0x10 + 2 * 5, p);
    p.ioapic.mmio_write(0x10, level | 0x65, p);
    p.ioapic.set_irq(5, true, p);
    EXPECT_EQ(p.delivered, 1);
    ASSERT_EQ(p.lapic.pending_vector(0), 0x65);
    p.lapic.acknowledge(0x65);
    EXPECT_EQ((p.lapic.mmio_read(0x180 + 3 * 0x10, 0) >> 5) & 1, 1u); // TMR bit 0x65
    p.lapic.mmio_write(0xB0, 0, 0, p); // EOI: line still high -> delivered again
    EXPECT_EQ(p.delivered, 2);
    ASSERT_EQ(p.lapic.pending_vector(0), 0x65);
    p.lapic.acknowledge(0x65);
    p.ioapic.set_irq(5, false, p);
    p.lapic.mmio_write(0xB0, 0, 0, p);
    EXPECT_EQ(p.delivered, 2);
    EXPECT_EQ(p.lapic.pending_vector(0), -1);
    EXPECT_EQ(p.ioapic.redirection_entry(5) & remote_irr, 0u);
}

TEST_F(VioapicTest, SaveRestoreRoundTrip) {
    program(0, 0x30);
    program(9, (0x0Full << 56) | level | logical | 0x49);
    ioapic.set_irq(9, true, bus);
    ioapic.set_irq(0, true, bus);
    ioapic.mmio_write(0x00, 0x13, bus);
    VirtualIoapic::State s{};
    ioapic.save(s);
    EXPECT_EQ(s.lines, (1u << 9) | 1u);
    VirtualIoapic copy;
    copy.reset(7);
    ASSERT_TRUE(copy.restore(s));
    VirtualIoapic::State again{};
    copy.save(again);
    EXPECT_EQ(std::memcmp(&s, &again, sizeof(s)), 0);
    EXPECT_EQ(copy.mmio_read(0x00), 0x13u);
    EXPECT_EQ(copy.mmio_read(0x10), ioapic.mmio_read(0x10));
    // The restored pin is still in service and asserted: EOI delivers it again.
    const size_t before = bus.sent.size();
    copy.eoi(0x49, bus);
    EXPECT_EQ(bus.sent.size(), before + 1);
}

TEST_F(VioapicTest, RestoreRejectsBadStates) {
    VirtualIoapic::State good{};
    ioapic.save(good);
    auto rejects = [&](auto mutate, const char* what) {
        VirtualIoapic::State s = good;
        mutate(s);
        VirtualIoapic target;
        target.reset(1);
        EXPECT_FALSE(target.restore(s)) << what;
        EXPECT_EQ(target.mmio_read(0x10), 1u << 24) << what; // unchanged
    };
    rejects([](auto& s) { s.format = 0; }, "format");
    rejects([](auto& s) { s.size = 8; }, "size");
    rejects([](auto& s) { s.id = 0x10000000; }, "id beyond 4 bits");
    rejects([](auto& s) { s.ioregsel = 0x100; }, "IOREGSEL beyond 8 bits");
    rejects([](auto& s) { s.lines = 1u << 24; }, "line 24");
    rejects([](auto& s) { s.reserved = 1; }, "reserved");
    rejects([](auto& s) { s.redirection[3] |= 1u << 12; }, "delivery status");
    rejects([](auto& s) { s.redirection[3] |= 1ull << 40; }, "reserved entry bits");
    rejects([](auto& s) { s.redirection[3] |= remote_irr; }, "remote IRR on an edge pin");
    std::mt19937 rng(11);
    for (int i = 0; i < 5000; ++i) {
        VirtualIoapic::State s = good;
        unsigned char* bytes = reinterpret_cast<unsigned char*>(&s);
        bytes[rng() % sizeof(s)] ^= static_cast<unsigned char>(1u << (rng() % 8));
        VirtualIoapic target;
        target.reset(0);
        if (!target.restore(s))
            continue;
        VirtualIoapic::State back{};
        target.save(back);
        ASSERT_EQ(std::memcmp(&s, &back, sizeof(s)), 0) << i;
    }
}

} // namespace
} // namespace godwit::hv
