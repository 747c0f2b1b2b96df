#include "godwit/vmm/acpi.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>

#include <fmt/format.h>

#include "godwit/error.hpp"
#include "godwit/vmm/guest_memory.hpp"

namespace godwit::vmm {

namespace {

constexpr char oem_id[] = "GODWIT";
constexpr char oem_table_id[] = "GODWITVM";
constexpr std::uint32_t creator_revision = 1;
constexpr std::size_t header_size = 36;

class TableWriter {
  public:
    explicit TableWriter(std::vector<std::uint8_t>& out) : out_(out) {}
    std::size_t align(std::size_t alignment) {
        out_.resize((out_.size() + alignment - 1) / alignment * alignment, 0);
        return out_.size();
    }
    void u8(std::uint64_t v) { out_.push_back(static_cast<std::uint8_t>(v)); }
    void u16(std::uint64_t v) { le(v, 2); }
    void u32(std::uint64_t v) { le(v, 4); }
    void bytes(const char* s, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            out_.push_back(static_cast<std::uint8_t>(s[i]));
        }
    }
    // Standard description header (ACPI 6.4 table 5.4); length and checksum patched by end().
    std::size_t begin(const char signature[4], std::uint8_t revision) {
        std::size_t start = out_.size();
        bytes(signature, 4);
        u32(0);
        u8(revision);
        u8(0);
        bytes(oem_id, 6);
        bytes(oem_table_id, 8);
        u32(1);           // OEM revision
        bytes("GDWT", 4); // creator ID
        u32(creator_revision);
        return start;
    }
    void end(std::size_t start) {
        std::uint32_t length = static_cast<std::uint32_t>(out_.size() - start);
        std::memcpy(&out_[start + 4], &length, 4);
        set_checksum(start, length, start + 9);
    }
    void set_checksum(std::size_t start, std::size_t length, std::size_t checksum_at) {
        out_[checksum_at] = 0;
        std::uint8_t sum = acpi_checksum({out_.data() + start, length});
        out_[checksum_at] = static_cast<std::uint8_t>(-sum);
    }
    void patch32(std::size_t at, std::uint32_t v) { std::memcpy(&out_[at], &v, 4); }
    std::size_t size() const { return out_.size(); }

  private:
    void le(std::uint64_t v, unsigned n) {
        for (unsigned i = 0; i < n; ++i) {
            out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
        }
    }
    std::vector<std::uint8_t>& out_;
};

} // namespace

std::uint8_t acpi_checksum(std::span<const std::uint8_t> bytes) {
    return static_cast<std::uint8_t>(std::accumulate(bytes.begin(), bytes.end(), 0u));
}

AcpiTables build_acpi_tables(const AcpiConfig& config) {
    if (config.apic_ids.empty() || config.apic_ids.size() > 255) {
        throw Error(ErrorCode::invalid_input,
                    fmt::format("ACPI MADT: {} vCPUs (need 1..255)", config.apic_ids.size()));
    }
    std::uint8_t ioapic_id = config.ioapic_id;
    if (ioapic_id == 0) {
        ioapic_id = static_cast<std::uint8_t>(
            *std::max_element(config.apic_ids.begin(), config.apic_ids.end()) + 1);
    }

    AcpiTables t;
    TableWriter w(t.bytes);
    auto gpa = [&](std::size_t offset) { return static_cast<std::uint32_t>(t.base + offset); };

    // RSDP, ACPI 1.0 (20 bytes, section 5.2.5.3); RSDT address patched below.
    std::size_t rsdp = w.size();
    w.bytes("RSD PTR ", 8);
    w.u8(0);
    w.bytes(oem_id, 6);
    w.u8(0);
    w.u32(0);

    // DSDT: \_S5 = Package {0, 0} so an OS can power off (SLP_TYP 0 + SLP_EN).
    w.align(16);
    std::size_t dsdt = w.begin("DSDT", 1);
    const std::uint8_t s5[] = {0x08, '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0x00, 0x00};
    for (std::uint8_t b : s5) {
        w.u8(b);
    }
    w.end(dsdt);

    // FACS: 64-byte aligned, no checksum (section 5.2.10).
    std::size_t facs = w.align(64);
    w.bytes("FACS", 4);
    w.u32(64);
    while (w.size() < facs + 64) {
        w.u8(0);
    }

    // FADT revision 1 (ACPI 1.0 layout, 116 bytes).
    w.align(16);
    std::size_t fadt = w.begin("FACP", 1);
    const std::uint16_t pm = config.pm_base;
    w.u32(gpa(facs)); // FIRMWARE_CTRL
    w.u32(gpa(dsdt)); // DSDT
    w.u8(0);          // INT_MODEL (1.0) / reserved
    w.u8(0);          // preferred PM profile: unspecified
    w.u16(config.sci_irq);
    w.u32(0);      // SMI_CMD 0: no SMM, the VM is always in ACPI mode
    w.u8(0);       // ACPI_ENABLE
    w.u8(0);       // ACPI_DISABLE
    w.u8(0);       // S4BIOS_REQ
    w.u8(0);       // PSTATE_CNT
    w.u32(pm);     // PM1a_EVT_BLK
    w.u32(0);      // PM1b_EVT_BLK
    w.u32(pm + 4); // PM1a_CNT_BLK
    w.u32(0);      // PM1b_CNT_BLK
    w.u32(0);      // PM2_CNT_BLK
    w.u32(pm + 8); // PM_TMR_BLK
    w.u32(0);      // GPE0_BLK
    w.u32(0);      // GPE1_BLK
    w.u8(4);       // PM1_EVT_LEN
    w.u8(2);       // PM1_CNT_LEN
    w.u8(0);       // PM2_CNT_LEN
    w.u8(4);       // PM_TMR_LEN
    w.u8(0);       // GPE0_BLK_LEN
    w.u8(0);       // GPE1_BLK_LEN
    w.u8(0);       // GPE1_BASE
    w.u8(0);       // CST_CNT
    w.u16(101);    // P_LVL2_LAT > 100: no C2
    w.u16(1001);   // P_LVL3_LAT > 1000: no C3
    w.u16(0);      // FLUSH_SIZE
    w.u16(0);      // FLUSH_STRIDE
    w.u8(0);       // DUTY_OFFSET
    w.u8(0);       // DUTY_WIDTH
    w.u8(0);       // DAY_ALRM
    w.u8(0);       // MON_ALRM
    w.u8(0);       // CENTURY
    w.u16(0);      // IAPC_BOOT_ARCH (reserved in 1.0)
    w.u8(0);       // reserved
    // Flags: WBINVD, PROC_C1, PWR_BUTTON and SLP_BUTTON absent, TMR_VAL_EXT if 32-bit.
    std::uint32_t flags = (1u << 0) | (1u << 2) | (1u << 4) | (1u << 5);
    flags |= config.pm_timer_32bit ? (1u << 8) : 0;
    w.u32(flags);
    w.end(fadt);

    // MADT revision 1 (section 5.2.12).
    w.align(16);
    std::size_t madt = w.begin("APIC", 1);
    w.u32(config.local_apic_address);
    w.u32(1); // PCAT_COMPAT: dual 8259s present (masked by guests that use the IOAPIC)
    for (std::size_t i = 0; i < config.apic_ids.size(); ++i) {
        w.u8(0); // Processor Local APIC
        w.u8(8);
        w.u8(i); // ACPI processor UID
        w.u8(config.apic_ids[i]);
        w.u32(1); // enabled
    }
    w.u8(1); // I/O APIC
    w.u8(12);
    w.u8(ioapic_id);
    w.u8(0);
    w.u32(config.ioapic_address);
    w.u32(0); // GSI base
    w.u8(2);  // interrupt source override: ISA IRQ0 (PIT) -> GSI 2
    w.u8(10);
    w.u8(0);
    w.u8(0);
    w.u32(2);
    w.u16(0); // conforms to the bus
    w.u8(2);  // SCI: level-triggered, active high
    w.u8(10);
    w.u8(0);
    w.u8(config.sci_irq);
    w.u32(config.sci_irq);
    w.u16(0x000d);
    w.end(madt);

    // RSDT (section 5.2.7) pointing at FADT and MADT.
    w.align(16);
    std::size_t rsdt = w.begin("RSDT", 1);
    w.u32(gpa(fadt));
    w.u32(gpa(madt));
    w.end(rsdt);

    w.patch32(rsdp + 16, gpa(rsdt));
    w.set_checksum(rsdp, 20, rsdp + 8);

    if (t.base + t.bytes.size() > AcpiTables::region_end) {
        throw Error(
            ErrorCode::invalid_input,
            fmt::format("ACPI tables need {} bytes, more than fit below 1 MiB", t.bytes.size()));
    }
    t.rsdp = t.base + rsdp;
    t.rsdt = t.base + rsdt;
    t.fadt = t.base + fadt;
    t.facs = t.base + facs;
    t.dsdt = t.base + dsdt;
    t.madt = t.base + madt;
    return t;
}

void install_acpi_tables(GuestMemory& memory, const AcpiTables& tables) {
    memory.write(tables.base, std::as_bytes(std::span{tables.bytes}));
}

AcpiPmDevice::AcpiPmDevice(bool timer_32bit, Clock clock, PowerOff power_off)
    : timer_32bit_(timer_32bit), clock_(std::move(clock)), power_off_(std::move(power_off)) {
    if (!clock_) {
        clock_ = [] {
            return static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count());
        };
    }
    start_ns_ = clock_();
}

std::uint32_t AcpiPmDevice::timer_value() const {
    unsigned __int128 ticks =
        static_cast<unsigned __int128>(clock_() - start_ns_) * timer_hz / 1'000'000'000u;
    std::uint32_t mask = timer_32bit_ ? 0xffff'ffffu : 0x00ff'ffffu;
    return static_cast<std::uint32_t>(ticks) & mask;
}

AcpiPmDevice::State AcpiPmDevice::save_state() const {
    std::scoped_lock lock(mutex_);
    return {pm1_status_, pm1_enable_, pm1_control_, timer_value()};
}

void AcpiPmDevice::restore_state(const State& state) {
    std::scoped_lock lock(mutex_);
    pm1_status_ = state.pm1_status;
    pm1_enable_ = state.pm1_enable;
    pm1_control_ = static_cast<std::uint16_t>((state.pm1_control | 1u) & ~(1u << 13));
    // Pick the start so that timer_value() == state.timer now: ticks -> nanoseconds,
    // rounded up so the first read is not one tick behind.
    std::uint64_t ns = static_cast<std::uint64_t>(
        (static_cast<unsigned __int128>(state.timer) * 1'000'000'000u + timer_hz - 1) / timer_hz);
    start_ns_ = clock_() - ns;
}

std::uint64_t AcpiPmDevice::read_byte_block(unsigned offset) const {
    // Byte view of the 12-byte block: STS(2) EN(2) CNT(2) reserved(2) TMR(4).
    std::uint8_t block[length] = {};
    std::memcpy(block + 0, &pm1_status_, 2);
    std::memcpy(block + 2, &pm1_enable_, 2);
    std::uint16_t control = pm1_control_ & ~std::uint16_t{1u << 13}; // SLP_EN reads 0
    std::memcpy(block + 4, &control, 2);
    std::uint32_t timer = timer_value();
    std::memcpy(block + 8, &timer, 4);
    return block[offset];
}

std::uint64_t AcpiPmDevice::read(std::uint64_t offset, unsigned size) {
    std::scoped_lock lock(mutex_);
    std::uint64_t value = 0;
    for (unsigned i = 0; i < size; ++i) {
        std::uint64_t b =
            offset + i < length ? read_byte_block(static_cast<unsigned>(offset + i)) : 0xff;
        value |= b << (8 * i);
    }
    return value;
}

void AcpiPmDevice::write(std::uint64_t offset, unsigned size, std::uint64_t value) {
    bool power_off = false;
    {
        std::scoped_lock lock(mutex_);
        for (unsigned i = 0; i < size; ++i) {
            std::uint64_t at = offset + i;
            auto byte = static_cast<std::uint16_t>((value >> (8 * i)) & 0xff);
            if (at < 2) {
                pm1_status_ &= static_cast<std::uint16_t>(~(byte << (8 * at))); // write 1 to clear
            } else if (at < 4) {
                unsigned shift = 8 * static_cast<unsigned>(at - 2);
                pm1_enable_ =
                    static_cast<std::uint16_t>((pm1_enable_ & ~(0xff << shift)) | (byte << shift));
            } else if (at < 6) {
                unsigned shift = 8 * static_cast<unsigned>(at - 4);
                std::uint16_t c =
                    static_cast<std::uint16_t>((pm1_control_ & ~(0xff << shift)) | (byte << shift));
                pm1_control_ = static_cast<std::uint16_t>(c | 1u); // SCI_EN stays set
            }
            // reserved bytes and the timer are read-only
        }
        std::uint16_t sleep_type = (pm1_control_ >> 10) & 7;
        if ((pm1_control_ & (1u << 13)) && sleep_type == 0) {
            power_off = true; // \_S5 is SLP_TYP 0 in our DSDT
        }
        pm1_control_ &= static_cast<std::uint16_t>(~(1u << 13));
    }
    if (power_off && power_off_) {
        power_off_();
    }
}

} // namespace godwit::vmm
