#include "godwit/vmm/acpi.hpp"

#include <cstring>
#include <string>

#include "godwit/vmm/guest_memory.hpp"
#include "test_support.hpp"

using namespace godwit::vmm;
using godwit::ErrorCode;

namespace {
// Reads tables back out of guest memory the way an OS does.
struct AcpiReader {
    const GuestMemory& m;
    std::uint32_t u32(std::uint64_t a) const { return m.read_value<std::uint32_t>(a); }
    std::uint16_t u16(std::uint64_t a) const { return m.read_value<std::uint16_t>(a); }
    std::uint8_t u8(std::uint64_t a) const { return m.read_value<std::uint8_t>(a); }
    std::string sig(std::uint64_t a, std::size_t n = 4) const {
        std::string s(n, '\0');
        m.read(a, std::as_writable_bytes(std::span{s.data(), n}));
        return s;
    }
    std::uint8_t checksum(std::uint64_t a, std::size_t n) const {
        std::vector<std::uint8_t> b(n);
        m.read(a, std::as_writable_bytes(std::span{b}));
        return acpi_checksum(b);
    }
    // Scans 0xE0000-0xFFFFF on 16-byte boundaries (ACPI 6.4 section 5.2.5.1).
    std::uint64_t find_rsdp() const {
        for (std::uint64_t a = 0xE0000; a < 0x100000; a += 16) {
            if (sig(a, 8) == "RSD PTR " && checksum(a, 20) == 0) {
                return a;
            }
        }
        return 0;
    }
};
} // namespace

TEST(Acpi, TablesAreFoundByScanningAndAllChecksumsAreValid) {
    GuestMemory memory(16 << 20);
    AcpiTables tables = build_acpi_tables({.apic_ids = {0, 1, 2, 3}});
    install_acpi_tables(memory, tables);
    AcpiReader r{memory};
    std::uint64_t rsdp = r.find_rsdp();
    ASSERT_EQ(rsdp, tables.rsdp);
    EXPECT_EQ(r.u8(rsdp + 15), 0); // revision 0 (ACPI 1.0)
    std::uint64_t rsdt = r.u32(rsdp + 16);
    ASSERT_EQ(r.sig(rsdt), "RSDT");
    std::uint32_t rsdt_length = r.u32(rsdt + 4);
    EXPECT_EQ(r.checksum(rsdt, rsdt_length), 0);
    ASSERT_EQ(rsdt_length, 36u + 2 * 4);
    std::set<std::string> found;
    for (std::uint32_t off = 36; off < rsdt_length; off += 4) {
        std::uint64_t table = r.u32(rsdt + off);
        EXPECT_GE(table, 0xE0000u);
        EXPECT_LT(table, 0x100000u);
        found.insert(r.sig(table));
        EXPECT_EQ(r.checksum(table, r.u32(table + 4)), 0) << r.sig(table);
    }
    EXPECT_EQ(found, (std::set<std::string>{"FACP", "APIC"}));
}

TEST(Acpi, FadtDescribesThePmBlocksAndTheTimerWidth) {
    for (bool wide : {true, false}) {
        GuestMemory memory(16 << 20);
        AcpiTables t = build_acpi_tables({.apic_ids = {0}, .pm_timer_32bit = wide});
        install_acpi_tables(memory, t);
        AcpiReader r{memory};
        ASSERT_EQ(r.sig(t.fadt), "FACP");
        EXPECT_EQ(r.u32(t.fadt + 4), 116u); // ACPI 1.0 FADT
        EXPECT_EQ(r.u32(t.fadt + 36), t.facs);
        EXPECT_EQ(r.u32(t.fadt + 40), t.dsdt);
        EXPECT_EQ(r.u16(t.fadt + 46), 9u);                         // SCI_INT
        EXPECT_EQ(r.u32(t.fadt + 56), 0x600u);                     // PM1a_EVT_BLK
        EXPECT_EQ(r.u32(t.fadt + 64), 0x604u);                     // PM1a_CNT_BLK
        EXPECT_EQ(r.u32(t.fadt + 76), 0x608u);                     // PM_TMR_BLK
        EXPECT_EQ(r.u8(t.fadt + 91), 4u);                          // PM_TMR_LEN
        EXPECT_EQ((r.u32(t.fadt + 112) >> 8) & 1, wide ? 1u : 0u); // TMR_VAL_EXT
        EXPECT_EQ(r.sig(t.facs), "FACS");
        EXPECT_EQ(t.facs % 64, 0u);
        EXPECT_EQ(r.sig(t.dsdt), "DSDT");
        EXPECT_EQ(r.checksum(t.dsdt, r.u32(t.dsdt + 4)), 0);
    }
}

TEST(Acpi, MadtListsEveryVcpuAndTheIoapic) {
    GuestMemory memory(16 << 20);
    AcpiTables t = build_acpi_tables({.apic_ids = {0, 1, 4}});
    install_acpi_tables(memory, t);
    AcpiReader r{memory};
    ASSERT_EQ(r.sig(t.madt), "APIC");
    EXPECT_EQ(r.u32(t.madt + 36), 0xFEE00000u);
    std::uint32_t length = r.u32(t.madt + 4);
    std::vector<std::uint8_t> apic_ids;
    int ioapics = 0, overrides = 0;
    for (std::uint64_t e = t.madt + 44; e < t.madt + length; e += r.u8(e + 1)) {
        ASSERT_GE(r.u8(e + 1), 2u);
        switch (r.u8(e)) {
        case 0:
            EXPECT_EQ(r.u8(e + 2), apic_ids.size()); // processor UID = vCPU index
            apic_ids.push_back(r.u8(e + 3));
            EXPECT_EQ(r.u32(e + 4), 1u); // enabled
            break;
        case 1:
            ++ioapics;
            EXPECT_EQ(r.u8(e + 2), 5u); // first ID after the vCPUs
            EXPECT_EQ(r.u32(e + 4), 0xFEC00000u);
            EXPECT_EQ(r.u32(e + 8), 0u);
            break;
        case 2:
            ++overrides;
            break;
        default:
            ADD_FAILURE() << "unexpected MADT entry type " << int(r.u8(e));
        }
    }
    EXPECT_EQ(apic_ids, (std::vector<std::uint8_t>{0, 1, 4}));
    EXPECT_EQ(ioapics, 1);
    EXPECT_EQ(overrides, 2);
    expect_error(ErrorCode::invalid_input, "vCPUs", [] { build_acpi_tables({}); });
}

TEST(AcpiPm, TimerCountsAt3579545HzAndWrapsAtItsWidth) {
    std::uint64_t now = 1'000;
    AcpiPmDevice narrow(false, [&] { return now; });
    AcpiPmDevice wide(true, [&] { return now; });
    EXPECT_EQ(narrow.timer_value(), 0u);
    now += 1'000'000'000; // one second
    EXPECT_EQ(wide.timer_value(), 3'579'545u);
    EXPECT_EQ(narrow.timer_value(), 3'579'545u & 0xffffffu);
    now += 10ull * 1'000'000'000;                    // 11 s: past 2^24 ticks, below 2^32
    EXPECT_EQ(wide.timer_value(), 39'375'000u - 5u); // floor(11 * 3579545)
    EXPECT_EQ(narrow.timer_value(), (39'375'000u - 5u) & 0xffffffu);
    IoBus bus("port");
    bus.add(0x600, AcpiPmDevice::length, std::make_shared<AcpiPmDevice>(true, [&] { return now; }));
    now += 2'000'000'000;
    IoAccess tmr{0x608, 4, false, 0};
    EXPECT_TRUE(bus.dispatch(tmr));
    EXPECT_EQ(tmr.data, 7'159'090u);
}

TEST(AcpiPm, SciEnStaysSetAndSleepS5PowersOff) {
    int power_offs = 0;
    AcpiPmDevice pm(
        true, [] { return std::uint64_t{0}; }, [&] { ++power_offs; });
    EXPECT_EQ(pm.read(4, 2) & 1, 1u); // SCI_EN: always in ACPI mode
    pm.write(4, 2, 0);
    EXPECT_EQ(pm.read(4, 2) & 1, 1u);
    pm.write(4, 2, (5u << 10)); // SLP_TYP 5 without SLP_EN: nothing
    EXPECT_EQ(power_offs, 0);
    pm.write(4, 2, (1u << 13)); // SLP_EN with SLP_TYP 0 = \_S5
    EXPECT_EQ(power_offs, 1);
    EXPECT_EQ(pm.read(4, 2) & (1u << 13), 0u); // SLP_EN reads as 0
}
