// The ACPI tables a guest finds by scanning 0xE0000-0xFFFFF for "RSD PTR " (ACPI 6.4
// section 5.2.5.1), and the fixed-hardware device they describe.
//
// Tables (ACPI 1.0 layouts, which every OS accepts): RSDP (revision 0) -> RSDT -> FADT
// (revision 1, with FACS and an empty DSDT) and MADT (one Processor Local APIC entry per vCPU,
// one IOAPIC, interrupt source overrides IRQ0 -> GSI2 and SCI IRQ9 level/high).
// Fixed hardware at pm_base (I/O): PM1a event block (4 bytes), PM1a control block (2 bytes),
// PM timer (4 bytes, 3.579545 MHz, 24- or 32-bit per FADT flag TMR_VAL_EXT).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "godwit/vmm/io_bus.hpp"

namespace godwit::vmm {

class GuestMemory;

struct AcpiConfig {
    std::vector<std::uint8_t> apic_ids; // one per vCPU, vCPU 0 (the BSP) first
    std::uint8_t ioapic_id = 0;         // defaults to the first ID after the vCPUs
    std::uint32_t ioapic_address = 0xFEC0'0000;
    std::uint32_t local_apic_address = 0xFEE0'0000;
    std::uint16_t pm_base = 0x600;
    std::uint8_t sci_irq = 9;
    bool pm_timer_32bit = true;
};

struct AcpiTables {
    static constexpr std::uint64_t region_start = 0xE0000;
    static constexpr std::uint64_t region_end = 0x100000;
    std::uint64_t base = region_start; // guest-physical address of bytes[0]
    std::vector<std::uint8_t> bytes;
    std::uint64_t rsdp = 0, rsdt = 0, fadt = 0, facs = 0, dsdt = 0, madt = 0;
};

// Builds the tables for placement at AcpiTables::region_start. Throws invalid_input for a
// configuration ACPI cannot express (no vCPUs, more than 255 APIC IDs).
AcpiTables build_acpi_tables(const AcpiConfig& config);
void install_acpi_tables(GuestMemory& memory, const AcpiTables& tables);
// Sum of bytes mod 256 — zero for a table with a correct checksum.
std::uint8_t acpi_checksum(std::span<const std::uint8_t> bytes);

// PM1a event/control blocks and the PM timer at pm_base (ACPI 6.4 section 4.8.3).
// The SCI is never raised and no fixed event sets a status bit (TMR_STS included: guests
// read the counter, they do not wait for its overflow event). Writing SLP_EN with SLP_TYP 0 (our
// \_S5 value) powers the VM off through the callback.
class AcpiPmDevice final : public IoDevice {
  public:
    static constexpr std::uint16_t length = 12;
    static constexpr std::uint64_t timer_hz = 3'579'545;
    using Clock = std::function<std::uint64_t()>; // monotonic nanoseconds
    using PowerOff = std::function<void()>;

    explicit AcpiPmDevice(bool timer_32bit, Clock clock = {}, PowerOff power_off = {});
    std::string_view name() const override { return "acpi-pm"; }
    std::uint64_t read(std::uint64_t offset, unsigned size) override;
    void write(std::uint64_t offset, unsigned size, std::uint64_t value) override;
    std::uint32_t timer_value() const;

    // The timer value travels with the state so it continues, not restarts, after migration.
    struct State {
        std::uint16_t pm1_status, pm1_enable, pm1_control;
        std::uint32_t timer;
        bool operator==(const State&) const = default;
    };
    State save_state() const;
    void restore_state(const State& state);

  private:
    std::uint64_t read_byte_block(unsigned offset) const;
    bool timer_32bit_;
    Clock clock_;
    PowerOff power_off_;
    std::uint64_t start_ns_;
    mutable std::mutex mutex_;
    std::uint16_t pm1_status_ = 0, pm1_enable_ = 0, pm1_control_ = 1; // SCI_EN: ACPI mode
};

} // namespace godwit::vmm
