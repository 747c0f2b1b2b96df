#include "platform/acpi.hpp"

namespace godwit::hv {
namespace {

u32 read_u32(const u8* p) {
    return u32{p[0]} | (u32{p[1]} << 8) | (u32{p[2]} << 16) | (u32{p[3]} << 24);
}
u64 read_u64(const u8* p) {
    return u64{read_u32(p)} | (u64{read_u32(p + 4)} << 32);
}

bool signature_is(const u8* p, const char* sig, usize n) {
    for (usize i = 0; i < n; ++i) {
        if (p[i] != static_cast<u8>(sig[i]))
            return false;
    }
    return true;
}

constexpr u64 sdt_header_length = 36;
constexpr u64 max_table_length = 1u << 20; // no sane ACPI table is bigger

// A whole, checksummed table at `address`, or nullptr.
const u8* read_table(const PhysicalMemoryReader& memory, u64 address, u64& length) {
    const u8* header = memory.read(address, sdt_header_length);
    if (header == nullptr)
        return nullptr;
    length = read_u32(header + 4);
    if (length < sdt_header_length || length > max_table_length)
        return nullptr;
    const u8* table = memory.read(address, length);
    if (table == nullptr || !acpi_checksum_ok(table, length))
        return nullptr;
    return table;
}

} // namespace

bool acpi_checksum_ok(const u8* bytes, u64 length) {
    u8 sum = 0;
    for (u64 i = 0; i < length; ++i)
        sum = static_cast<u8>(sum + bytes[i]);
    return sum == 0;
}

bool rsdp_valid(const u8* p, u64 length) {
    if (length < 20 || !signature_is(p, "RSD PTR ", 8) || !acpi_checksum_ok(p, 20))
        return false;
    if (p[15] >= 2) {
        if (length < 36)
            return false;
        u32 full = read_u32(p + 20);
        if (full < 36 || full > length || !acpi_checksum_ok(p, full))
            return false;
    }
    return true;
}

u64 rsdp_scan(const PhysicalMemoryReader& memory, u64 base, u64 length) {
    for (u64 off = 0; off + 20 <= length; off += 16) {
        const u8* p = memory.read(base + off, 20);
        if (p == nullptr || !signature_is(p, "RSD PTR ", 8))
            continue;
        u64 avail = length - off < 36 ? length - off : 36;
        const u8* full = memory.read(base + off, avail);
        if (full != nullptr && rsdp_valid(full, avail))
            return base + off;
    }
    return 0;
}

u64 acpi_find_table(const PhysicalMemoryReader& memory, u64 rsdp_address, const char signature[4]) {
    const u8* rsdp = memory.read(rsdp_address, 36);
    if (rsdp == nullptr)
        rsdp = memory.read(rsdp_address, 20);
    if (rsdp == nullptr || !rsdp_valid(rsdp, rsdp[15] >= 2 ? 36 : 20))
        return 0;
    bool use_xsdt = rsdp[15] >= 2 && read_u64(rsdp + 24) != 0;
    u64 root_address = use_xsdt ? read_u64(rsdp + 24) : read_u32(rsdp + 16);
    u64 root_length = 0;
    const u8* root = read_table(memory, root_address, root_length);
    if (root == nullptr || !signature_is(root, use_xsdt ? "XSDT" : "RSDT", 4))
        return 0;
    u64 entry_size = use_xsdt ? 8 : 4;
    for (u64 off = sdt_header_length; off + entry_size <= root_length; off += entry_size) {
        u64 address = use_xsdt ? read_u64(root + off) : read_u32(root + off);
        u64 length = 0;
        const u8* table = read_table(memory, address, length);
        if (table != nullptr && signature_is(table, signature, 4))
            return address;
    }
    return 0;
}

const char* parse_madt(const PhysicalMemoryReader& memory, u64 address, MadtInfo& out) {
    u64 length = 0;
    const u8* madt = read_table(memory, address, length);
    if (madt == nullptr)
        return "MADT unreadable or bad checksum";
    if (!signature_is(madt, "APIC", 4))
        return "table is not a MADT";
    if (length < sdt_header_length + 8)
        return "MADT too short";
    out = MadtInfo{};
    out.lapic_address = read_u32(madt + 36);
    out.pcat_compat = (read_u32(madt + 40) & 1) != 0;
    for (u64 off = 44; off + 2 <= length;) {
        u8 type = madt[off];
        u8 entry_length = madt[off + 1];
        if (entry_length < 2 || off + entry_length > length)
            return "MADT entry overruns the table";
        const u8* e = madt + off;
        auto add_cpu = [&](u32 apic_id, u32 flags) {
            // Bit 0 enabled, bit 1 online capable (ACPI 6.3+): both can be started.
            if ((flags & 3) != 0 && out.cpu_count < MadtInfo::max_cpus) {
                out.apic_ids[out.cpu_count++] = apic_id;
            }
        };
        switch (type) {
        case 0: // Processor Local APIC
            if (entry_length < 8)
                return "short Local APIC entry";
            add_cpu(e[3], read_u32(e + 4));
            break;
        case 1: // I/O APIC
            if (entry_length < 12)
                return "short I/O APIC entry";
            if (out.ioapic_count++ == 0)
                out.ioapic_address = read_u32(e + 4);
            break;
        case 5: // Local APIC address override
            if (entry_length < 12)
                return "short LAPIC override entry";
            out.lapic_address = read_u64(e + 4);
            break;
        case 9: // Processor Local x2APIC
            if (entry_length < 16)
                return "short x2APIC entry";
            add_cpu(read_u32(e + 4), read_u32(e + 8));
            break;
        default:
            break;
        }
        off += entry_length;
    }
    if (out.cpu_count == 0)
        return "MADT lists no enabled processor";
    return nullptr;
}

} // namespace godwit::hv
