#include "platform/acpi.hpp"

#include <cstring>
#include <map>
#include <vector>

#include <gtest/gtest.h>

namespace godwit::hv {
namespace {

// Fake physical memory: a few byte ranges at chosen addresses.
class FakeMemory final : public PhysicalMemoryReader {
  public:
    void put(u64 address, std::vector<u8> bytes) { ranges_[address] = std::move(bytes); }
    std::vector<u8>& at(u64 address) { return ranges_.at(address); }
    const u8* read(u64 address, u64 length) const override {
        for (const auto& [base, bytes] : ranges_) {
            if (address >= base && address + length <= base + bytes.size())
                return bytes.data() + (address - base);
        }
        return nullptr;
    }

  private:
    std::map<u64, std::vector<u8>> ranges_;
};

void fix_checksum(std::vector<u8>& t, usize checksum_offset, usize length) {
    t[checksum_offset] = 0;
    u8 sum = 0;
    for (usize i = 0; i < length; ++i)
        sum = static_cast<u8>(sum + t[i]);
    t[checksum_offset] = static_cast<u8>(-sum);
}

std::vector<u8> table(const char* sig, std::vector<u8> body) {
    std::vector<u8> t(36, 0);
    std::memcpy(t.data(), sig, 4);
    t.insert(t.end(), body.begin(), body.end());
    u32 len = static_cast<u32>(t.size());
    std::memcpy(t.data() + 4, &len, 4);
    fix_checksum(t, 9, t.size());
    return t;
}

void put32(std::vector<u8>& v, u32 x) {
    for (int i = 0; i < 4; ++i)
        v.push_back(static_cast<u8>(x >> (8 * i)));
}

std::vector<u8> rsdp_v1(u32 rsdt) {
    std::vector<u8> r(20, 0);
    std::memcpy(r.data(), "RSD PTR ", 8);
    std::memcpy(r.data() + 16, &rsdt, 4);
    fix_checksum(r, 8, 20);
    return r;
}

std::vector<u8> madt_body() {
    std::vector<u8> b;
    put32(b, 0xFEE00000);
    put32(b, 1);                                                    // PCAT_COMPAT
    b.insert(b.end(), {0, 8, 0, 0, 1, 0, 0, 0});                    // LAPIC id 0 enabled
    b.insert(b.end(), {0, 8, 1, 1, 1, 0, 0, 0});                    // LAPIC id 1 enabled
    b.insert(b.end(), {0, 8, 2, 2, 0, 0, 0, 0});                    // LAPIC id 2 disabled
    b.insert(b.end(), {1, 12, 0, 0, 0, 0, 0xC0, 0xFE, 0, 0, 0, 0}); // IOAPIC 0xFEC00000
    std::vector<u8> x2{9, 16, 0, 0};                                // x2APIC id 300 enabled
    put32(x2, 300);
    put32(x2, 1);
    put32(x2, 0);
    b.insert(b.end(), x2.begin(), x2.end());
    return b;
}

TEST(Acpi, FindsMadtThroughRsdpAndRsdt) {
    FakeMemory mem;
    std::vector<u8> rsdt_body;
    put32(rsdt_body, 0x7FE1000); // a FACP
    put32(rsdt_body, 0x7FE2000); // the MADT
    mem.put(0x7FE0000, table("RSDT", rsdt_body));
    mem.put(0x7FE1000, table("FACP", std::vector<u8>(80, 0)));
    mem.put(0x7FE2000, table("APIC", madt_body()));
    std::vector<u8> bios(0x20000, 0);
    auto r = rsdp_v1(0x7FE0000);
    std::memcpy(bios.data() + 0x5A40, r.data(), r.size());
    mem.put(0xE0000, bios);

    u64 rsdp = rsdp_scan(mem, 0xE0000, 0x20000);
    ASSERT_EQ(rsdp, 0xE5A40u);
    u64 madt_address = acpi_find_table(mem, rsdp, "APIC");
    ASSERT_EQ(madt_address, 0x7FE2000u);
    MadtInfo madt;
    ASSERT_EQ(parse_madt(mem, madt_address, madt), nullptr);
    EXPECT_EQ(madt.lapic_address, 0xFEE00000u);
    ASSERT_EQ(madt.cpu_count, 3u); // 0, 1 and the x2APIC 300; the disabled one skipped
    EXPECT_EQ(madt.apic_ids[2], 300u);
    EXPECT_EQ(madt.ioapic_count, 1u);
    EXPECT_EQ(madt.ioapic_address, 0xFEC00000u);
    EXPECT_TRUE(madt.pcat_compat);
    EXPECT_EQ(acpi_find_table(mem, rsdp, "HPET"), 0u);
}

TEST(Acpi, RejectsBadChecksumsAndOverruns) {
    FakeMemory mem;
    auto madt = table("APIC", madt_body());
    mem.put(0x1000, madt);
    MadtInfo info;
    mem.at(0x1000)[40] ^= 1; // corrupt: checksum now wrong
    EXPECT_NE(parse_madt(mem, 0x1000, info), nullptr);

    auto overrun = madt_body();
    overrun[9] = 200; // second entry claims 200 bytes
    mem.put(0x3000, table("APIC", overrun));
    EXPECT_NE(parse_madt(mem, 0x3000, info), nullptr);

    auto zero_len = madt_body();
    zero_len[9] = 0;
    mem.put(0x5000, table("APIC", zero_len));
    EXPECT_NE(parse_madt(mem, 0x5000, info), nullptr);

    auto bad_rsdp = rsdp_v1(0x1000);
    bad_rsdp[8] ^= 0xFF;
    EXPECT_FALSE(rsdp_valid(bad_rsdp.data(), bad_rsdp.size()));
    EXPECT_EQ(parse_madt(mem, 0xDEAD000, info) != nullptr, true); // unreadable
}

} // namespace
} // namespace godwit::hv
