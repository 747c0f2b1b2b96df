// ACPI table discovery and MADT parsing (ACPI 6.x: 5.2.5 RSDP, 5.2.7 RSDT, 5.2.8 XSDT,
// 5.2.12 MADT). Pure: physical memory is read through PhysicalMemoryReader, which the
// kernel implements with its identity map and unit tests with a fake buffer.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

class PhysicalMemoryReader {
  public:
    // Pointer to `length` readable bytes at physical `address`, or nullptr.
    virtual const u8* read(u64 address, u64 length) const = 0;

  protected:
    ~PhysicalMemoryReader() = default;
};

bool acpi_checksum_ok(const u8* bytes, u64 length);

// Valid RSDP at `p` (signature, checksum, extended checksum for revision >= 2) with `length`
// readable bytes.
bool rsdp_valid(const u8* p, u64 length);

// Scans [base, base+length) on 16-byte boundaries for a valid RSDP; returns its physical
// address or 0. The Multiboot2 ACPI tag only holds a copy; the root partition needs the
// real table's address (BIOS area 0xE0000-0xFFFFF).
u64 rsdp_scan(const PhysicalMemoryReader& memory, u64 base, u64 length);

// Physical address of the table with `signature` ("APIC", "FACP", ...) reachable from the
// RSDP at rsdp_address (XSDT preferred over RSDT), or 0. Checks every checksum.
u64 acpi_find_table(const PhysicalMemoryReader& memory, u64 rsdp_address, const char signature[4]);

struct MadtInfo {
    static constexpr u32 max_cpus = 256;
    u64 lapic_address = 0;
    u32 cpu_count = 0;      // enabled (or online-capable) processors
    u32 apic_ids[max_cpus]; // in MADT order; the BSP is usually first
    u32 ioapic_count = 0;
    u64 ioapic_address = 0;   // first I/O APIC
    bool pcat_compat = false; // dual 8259s present
};

// Parses a MADT at `address`. Returns nullptr on success or what is wrong.
const char* parse_madt(const PhysicalMemoryReader& memory, u64 address, MadtInfo& out);

} // namespace godwit::hv
