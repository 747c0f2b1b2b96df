#include "arch/x86/guest_paging.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <map>
#include <random>

namespace godwit::hv::x86 {
namespace {

constexpr u64 cr0_pe = 1, cr0_pg = 1ull << 31;
constexpr u64 cr4_pse = 1 << 4, cr4_pae = 1 << 5, cr4_la57 = 1 << 12;
constexpr u64 efer_lme = 1 << 8, efer_lma = 1 << 10, efer_nxe = 1 << 11;
constexpr u64 p = 1, rw = 2, us = 4, ps = 1 << 7;

// Guest RAM made of the 4 KiB pages that were touched; everything else is "not RAM".
class FakeGuestMemory {
  public:
    void add_page(u64 gpa) { pages_[gpa & ~0xFFFull]; }
    void write(u64 gpa, const void* data, u32 length) {
        const auto* bytes = static_cast<const u8*>(data);
        for (u32 i = 0; i < length; ++i)
            pages_[(gpa + i) & ~0xFFFull][(gpa + i) & 0xFFF] = bytes[i];
    }
    void write32(u64 gpa, u32 value) { write(gpa, &value, 4); }
    void write64(u64 gpa, u64 value) { write(gpa, &value, 8); }
    void remove_page(u64 gpa) { pages_.erase(gpa & ~0xFFFull); }

    GuestPhysicalReader reader() { return {&FakeGuestMemory::read, this}; }
    u32 reads = 0;

  private:
    static bool read(void* context, u64 gpa, void* dst, u32 length) {
        auto* self = static_cast<FakeGuestMemory*>(context);
        ++self->reads;
        auto* out = static_cast<u8*>(dst);
        for (u32 i = 0; i < length; ++i) {
            const auto page = self->pages_.find((gpa + i) & ~0xFFFull);
            if (page == self->pages_.end())
                return false;
            out[i] = page->second[(gpa + i) & 0xFFF];
        }
        return true;
    }
    std::map<u64, std::array<u8, 4096>> pages_;
};

Translation translate(const PagingContext& context, u64 linear, FakeGuestMemory& memory) {
    GuestPhysicalReader reader = memory.reader();
    return translate_linear(context, linear, reader);
}

void expect_gpa(const Translation& t, u64 gpa) {
    EXPECT_EQ(t.status, WalkStatus::ok);
    EXPECT_EQ(t.gpa, gpa);
}

TEST(GuestPaging, ModeFromControlRegisters) {
    EXPECT_EQ(paging_mode({cr0_pe, 0, cr4_pae, efer_lme}), PagingMode::none);
    EXPECT_EQ(paging_mode({cr0_pe | cr0_pg, 0, cr4_pse, 0}), PagingMode::bits32);
    EXPECT_EQ(paging_mode({cr0_pe | cr0_pg, 0, cr4_pae, efer_lme}), PagingMode::pae);
    EXPECT_EQ(paging_mode({cr0_pe | cr0_pg, 0, cr4_pae, efer_lme | efer_lma}), PagingMode::level4);
    EXPECT_EQ(paging_mode({cr0_pe | cr0_pg, 0, cr4_pae | cr4_la57, efer_lme | efer_lma}),
              PagingMode::level5);
}

TEST(GuestPaging, PagingOffIsIdentityWithin4GiB) {
    FakeGuestMemory memory;
    const PagingContext real{0, 0x1234000, 0, 0};
    expect_gpa(translate(real, 0xFEE000B0, memory), 0xFEE000B0);
    expect_gpa(translate(real, 0x1'0000'1234, memory), 0x1234);
    const PagingContext protected_flat{cr0_pe, 0, cr4_pae, 0};
    expect_gpa(translate(protected_flat, 0xFEC00010, memory), 0xFEC00010);
    EXPECT_EQ(memory.reads, 0u); // nothing to walk
}

// 32-bit paging (SDM 4.3): CR3 → 1024 4-byte PDEs → 1024 4-byte PTEs, 4 MiB pages with PSE.
class Paging32 : public ::testing::Test {
  protected:
    void SetUp() override {
        memory.write32(0x1000 + 1 * 4, 0x2000 | p | rw);      // PDE 1 → PT at 0x2000
        memory.write32(0x2000 + 1 * 4, 0x5000 | p | rw | us); // 0x00401000 → 0x5000
        memory.write32(0x2000 + 2 * 4, 0x6000);               // 0x00402000: not present
        memory.write32(0x1000 + 2 * 4, 0x0C000000 | p | ps);  // 0x00800000: 4 MiB page
        memory.write32(0x1000 + 3 * 4, 0x0D400000 | p | ps | (0x3 << 13)); // PSE-36: 3 << 32
        memory.write32(0x1000 + 4 * 4, 0x0D800000 | p | ps | (1 << 21));   // reserved bit 21
        memory.write32(0x1000 + 0x3FB * 4, 0x3000 | p);                    // 0xFEC00000
        memory.write32(0x3000 + 0x200 * 4, 0xFEE00000 | p);                // 0xFEE00000 page
        memory.add_page(0x5000);
    }
    FakeGuestMemory memory;
    PagingContext context{cr0_pe | cr0_pg, 0x1000, cr4_pse, 0};
};

TEST_F(Paging32, FourKibPages) {
    expect_gpa(translate(context, 0x00401234, memory), 0x5234);
    expect_gpa(translate(context, 0xFEE000B0, memory), 0xFEE000B0);
    EXPECT_EQ(translate(context, 0x00402000, memory).status, WalkStatus::not_present);
    EXPECT_EQ(translate(context, 0x00000000, memory).status, WalkStatus::not_present); // PDE 0
    // Outside long mode the linear address is 32 bits.
    expect_gpa(translate(context, 0xABCD'0000'0040'1234, memory), 0x5234);
}

TEST_F(Paging32, FourMibPagesNeedCr4Pse) {
    expect_gpa(translate(context, 0x00923456, memory), 0x0C123456);
    context.physical_address_bits = 40;
    expect_gpa(translate(context, 0x00C00010, memory), 0x3'0D40'0010);
    context.physical_address_bits = 33; // PSE-36 bits 20:14 reserved, bit 13 (= bit 32) ok
    EXPECT_EQ(translate(context, 0x00C00010, memory).status, WalkStatus::reserved_bit);
    EXPECT_EQ(translate(context, 0x01000000, memory).status, WalkStatus::reserved_bit);
    // Without CR4.PSE the PS bit is ignored: the PDE points to a page table (not RAM here).
    context.cr4 = 0;
    EXPECT_EQ(translate(context, 0x00923456, memory).status, WalkStatus::not_ram);
}

TEST_F(Paging32, TablesOutsideRam) {
    context.cr3 = 0x7000; // no page directory there
    EXPECT_EQ(translate(context, 0x00401234, memory).status, WalkStatus::not_ram);
}

// PAE paging (SDM 4.4): 4 PDPTEs at CR3 (32-byte aligned), 8-byte PDEs and PTEs, 2 MiB pages.
class PagingPae : public ::testing::Test {
  protected:
    void SetUp() override {
        memory.write64(0x3020 + 0 * 8, 0x4000 | p);           // PDPTE 0 → PD 0x4000
        memory.write64(0x3020 + 3 * 8, 0x7000 | p);           // PDPTE 3 → PD 0x7000 (3-4 GiB)
        memory.write64(0x4000 + 1 * 8, 0x6000 | p | rw);      // PDE 1 → PT
        memory.write64(0x6000 + 5 * 8, 0x1'2345'6000ull | p); // 0x00205000
        memory.write64(0x6000 + 6 * 8, 0x8000 | p | (1ull << 63));     // XD
        memory.write64(0x6000 + 7 * 8, 0x9000 | p | (1ull << 52));     // bit 52: reserved
        memory.write64(0x4000 + 2 * 8, 0x0AE00000 | p | ps);           // 2 MiB page
        memory.write64(0x4000 + 3 * 8, 0x0B000000 | p | ps | 1 << 13); // reserved bit 13
        memory.write64(0x4000 + 4 * 8, 0x0B200000 | p | ps | 1 << 12); // PAT bit: fine
        memory.write64(0x7000 + 0x1F7 * 8, 0xFEE00000 | p | ps);       // 0xFEE00000
    }
    FakeGuestMemory memory;
    PagingContext context{cr0_pe | cr0_pg, 0x3020, cr4_pae, 0};
};

TEST_F(PagingPae, Walks) {
    expect_gpa(translate(context, 0x00205ABC, memory), 0x1'2345'6ABC);
    expect_gpa(translate(context, 0x00412345, memory), 0x0AE12345);
    expect_gpa(translate(context, 0x00812345, memory), 0x0B212345);
    expect_gpa(translate(context, 0xFEE00300, memory), 0xFEE00300);
    EXPECT_EQ(translate(context, 0x40000000, memory).status, WalkStatus::not_present); // PDPTE
    EXPECT_EQ(translate(context, 0x00000000, memory).status, WalkStatus::not_present); // PDE
    EXPECT_EQ(translate(context, 0x00204000, memory).status, WalkStatus::not_present); // PTE
}

TEST_F(PagingPae, ReservedBits) {
    EXPECT_EQ(translate(context, 0x00600000, memory).status, WalkStatus::reserved_bit);
    EXPECT_EQ(translate(context, 0x00207000, memory).status, WalkStatus::reserved_bit);
    // XD is reserved unless EFER.NXE.
    EXPECT_EQ(translate(context, 0x00206000, memory).status, WalkStatus::reserved_bit);
    context.efer = efer_nxe;
    expect_gpa(translate(context, 0x00206000, memory), 0x8000);
    // Address bits above MAXPHYADDR.
    context.physical_address_bits = 32;
    EXPECT_EQ(translate(context, 0x00205ABC, memory).status, WalkStatus::reserved_bit);
    context.physical_address_bits = 36;
    expect_gpa(translate(context, 0x00205ABC, memory), 0x1'2345'6ABC);
    // PDPTE bits 2:1 and 8:5 are reserved.
    memory.write64(0x3020, 0x4000 | p | rw);
    EXPECT_EQ(translate(context, 0x00205ABC, memory).status, WalkStatus::reserved_bit);
}

TEST_F(PagingPae, PdptesFromTheVmcs) {
    // The CPU uses the PDPTEs it loaded at MOV CR3, even if the table in memory changed.
    const u64 pdptes[4] = {0x4000 | p, 0, 0, 0x7000 | p};
    memory.remove_page(0x3000);
    EXPECT_EQ(translate(context, 0x00205ABC, memory).status, WalkStatus::not_ram);
    context.pae_pdptes = pdptes;
    expect_gpa(translate(context, 0x00205ABC, memory), 0x1'2345'6ABC);
    expect_gpa(translate(context, 0xFEE00300, memory), 0xFEE00300);
    EXPECT_EQ(translate(context, 0x80000000, memory).status, WalkStatus::not_present);
}

// 4-level paging (SDM 4.5): PML4 → PDPT (1 GiB pages) → PD (2 MiB pages) → PT.
class Paging4Level : public ::testing::Test {
  protected:
    static constexpr u64 pml4 = 0x10000, pdpt = 0x11000, pd = 0x12000, pt = 0x13000;
    static u64 index(u64 linear, u32 level) { return (linear >> (12 + 9 * (level - 1))) & 0x1FF; }

    void SetUp() override {
        // 0xFFFFFFFF'FEE00000 (Linux's fixmap-style high mapping) → 4 KiB page 0xFEE00000.
        memory.write64(pml4 + index(high, 4) * 8, pdpt | p | rw);
        memory.write64(pdpt + index(high, 3) * 8, pd | p | rw);
        memory.write64(pd + index(high, 2) * 8, pt | p | rw);
        memory.write64(pt + index(high, 1) * 8, 0xFEE00000 | p | rw | (1ull << 63));
        // Low half: 1 GiB page at 1 GiB → 0x80000000, 2 MiB page at 0 → 0x200000.
        memory.write64(pml4 + 0, 0x14000 | p);
        memory.write64(0x14000 + 1 * 8, 0x80000000 | p | ps);
        memory.write64(0x14000 + 0 * 8, 0x15000 | p);
        memory.write64(0x15000 + 0 * 8, 0x200000 | p | ps | (0x7Full << 52)); // ignored bits
    }
    static constexpr u64 high = 0xFFFFFFFF'FEE00000ull;
    FakeGuestMemory memory;
    PagingContext context{cr0_pe | cr0_pg, pml4, cr4_pae, efer_lme | efer_lma | efer_nxe};
};

TEST_F(Paging4Level, AllPageSizes) {
    expect_gpa(translate(context, high + 0xB0, memory), 0xFEE000B0);
    expect_gpa(translate(context, 0x4123'4567, memory), 0x8123'4567);
    expect_gpa(translate(context, 0x0012'3456, memory), 0x0032'3456);
    // CR3's low bits (PCID, PWT/PCD) are not part of the table address.
    context.cr3 = pml4 | 0x18 | 0x5;
    expect_gpa(translate(context, high + 0xB0, memory), 0xFEE000B0);
}

TEST_F(Paging4Level, NotPresentAtEachLevel) {
    EXPECT_EQ(translate(context, 0x7F00'0000'0000, memory).status, WalkStatus::not_present);
    EXPECT_EQ(translate(context, 0x8000'0000, memory).status, WalkStatus::not_present);
    EXPECT_EQ(translate(context, 0x0040'0000, memory).status, WalkStatus::not_present);
    EXPECT_EQ(translate(context, high + 0x1000, memory).status, WalkStatus::not_present);
}

TEST_F(Paging4Level, ReservedBits) {
    // XD without EFER.NXE.
    context.efer &= ~efer_nxe;
    EXPECT_EQ(translate(context, high, memory).status, WalkStatus::reserved_bit);
    context.efer |= efer_nxe;
    // PS in a PML4E.
    memory.write64(pml4 + 1 * 8, 0x16000 | p | ps);
    EXPECT_EQ(translate(context, 0x80'0000'0000, memory).status, WalkStatus::reserved_bit);
    // 1 GiB page with bits 29:13 set.
    memory.write64(0x14000 + 2 * 8, 0xC0000000 | p | ps | (1ull << 29));
    EXPECT_EQ(translate(context, 0x8000'0000, memory).status, WalkStatus::reserved_bit);
    // 2 MiB page with bit 20 set.
    memory.write64(0x15000 + 1 * 8, 0x400000 | p | ps | (1ull << 20));
    EXPECT_EQ(translate(context, 0x0020'0000, memory).status, WalkStatus::reserved_bit);
    // Bits MAXPHYADDR..51 in a table pointer.
    context.physical_address_bits = 39;
    memory.write64(pml4 + 2 * 8, (1ull << 40) | 0x17000 | p);
    EXPECT_EQ(translate(context, 0x100'0000'0000, memory).status, WalkStatus::reserved_bit);
    context.physical_address_bits = 48;
    EXPECT_EQ(translate(context, 0x100'0000'0000, memory).status, WalkStatus::not_ram);
}

TEST_F(Paging4Level, NonCanonicalAndFiveLevel) {
    EXPECT_EQ(translate(context, 0x0000'8000'0000'0000, memory).status, WalkStatus::non_canonical);
    EXPECT_EQ(translate(context, 0xFFFF'7FFF'FFFF'F000, memory).status, WalkStatus::non_canonical);
    context.cr4 |= cr4_la57;
    EXPECT_EQ(translate(context, high, memory).status, WalkStatus::unsupported);
}

TEST_F(Paging4Level, TablesOutsideRamAtEachLevel) {
    memory.remove_page(pt);
    EXPECT_EQ(translate(context, high, memory).status, WalkStatus::not_ram);
    memory.remove_page(pd);
    EXPECT_EQ(translate(context, high, memory).status, WalkStatus::not_ram);
    memory.remove_page(pdpt);
    EXPECT_EQ(translate(context, high, memory).status, WalkStatus::not_ram);
    memory.remove_page(pml4);
    EXPECT_EQ(translate(context, high, memory).status, WalkStatus::not_ram);
}

// An instruction at the end of one linear page continues on the next, which maps anywhere.
TEST_F(Paging4Level, FetchAcrossAPageBoundary) {
    const u64 code = 0xFFFFFFFF'81000FFAull; // 6 bytes left in the page
    memory.write64(pml4 + index(code, 4) * 8, pdpt | p);
    memory.write64(pdpt + index(code, 3) * 8, 0x18000 | p);
    memory.write64(0x18000 + index(code, 2) * 8, 0x19000 | p);
    memory.write64(0x19000 + index(code, 1) * 8, 0x30000 | p);
    memory.write64(0x19000 + (index(code, 1) + 1) * 8, 0x21000 | p); // not adjacent
    const u8 first[6] = {0x67, 0x66, 0x44, 0x89, 0x84, 0x8d};
    const u8 second[9] = {0x34, 0x12, 0x00, 0x00, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE};
    memory.write(0x30FFA, first, 6);
    memory.write(0x21000, second, 9);

    GuestPhysicalReader reader = memory.reader();
    u8 bytes[15] = {};
    ASSERT_EQ(fetch_instruction(context, code, bytes, reader), 15u);
    EXPECT_EQ(std::memcmp(bytes, first, 6), 0);
    EXPECT_EQ(std::memcmp(bytes + 6, second, 9), 0);

    // The next page not present: only the first page's bytes.
    memory.write64(0x19000 + (index(code, 1) + 1) * 8, 0x21000);
    std::memset(bytes, 0, sizeof bytes);
    EXPECT_EQ(fetch_instruction(context, code, bytes, reader), 6u);
    EXPECT_EQ(std::memcmp(bytes, first, 6), 0);
    // The next page maps to something that is not RAM (an MMIO page).
    memory.write64(0x19000 + (index(code, 1) + 1) * 8, 0xFEC00000 | p);
    EXPECT_EQ(fetch_instruction(context, code, bytes, reader), 6u);
    // The first page not present: nothing.
    memory.write64(0x19000 + index(code, 1) * 8, 0x30000);
    EXPECT_EQ(fetch_instruction(context, code, bytes, reader), 0u);
    // Within one page: one read of 15 bytes.
    memory.write64(0x19000 + (index(code, 1) + 1) * 8, 0x21000 | p);
    std::memset(bytes, 0, sizeof bytes);
    memory.write(0x21000 + 0x100, second, 9);
    const u32 reads_before = memory.reads;
    EXPECT_EQ(fetch_instruction(context, code + 6 + 0x100, bytes, reader), 15u);
    EXPECT_EQ(std::memcmp(bytes, second, 9), 0);
    EXPECT_EQ(memory.reads - reads_before, 4u + 1u); // four table entries, one fetch
}

TEST(GuestPaging, FetchWithPagingOffAndAt4GiBWrap) {
    FakeGuestMemory memory;
    const u8 code[5] = {0xa3, 0xb0, 0x00, 0xe0, 0xfe};
    memory.write(0x7C00, code, 5);
    memory.add_page(0x8000);
    GuestPhysicalReader reader = memory.reader();
    u8 bytes[15] = {};
    const PagingContext real{0, 0, 0, 0};
    ASSERT_EQ(fetch_instruction(real, 0x7C00, bytes, reader), 15u);
    EXPECT_EQ(std::memcmp(bytes, code, 5), 0);
    // The last page below 4 GiB is not RAM: nothing.
    EXPECT_EQ(fetch_instruction(real, 0xFFFFFFFE, bytes, reader), 0u);
    // Ending 2 bytes before a page that is not RAM.
    EXPECT_EQ(fetch_instruction(real, 0x8FFE, bytes, reader), 2u);

    // 32-bit paging: an instruction at 0xFFFFFFFC continues at linear 0.
    FakeGuestMemory paged;
    paged.write32(0x1000 + 0x3FF * 4, 0x2000 | p);
    paged.write32(0x2000 + 0x3FF * 4, 0x5000 | p);
    paged.write32(0x1000 + 0, 0x3000 | p);
    paged.write32(0x3000 + 0, 0x6000 | p);
    paged.write(0x5FFC, code, 4);
    paged.write(0x6000, code + 4, 1);
    GuestPhysicalReader paged_reader = paged.reader();
    const PagingContext bits32{cr0_pe | cr0_pg, 0x1000, 0, 0};
    std::memset(bytes, 0, sizeof bytes);
    ASSERT_EQ(fetch_instruction(bits32, 0xFFFFFFFC, bytes, paged_reader), 15u);
    EXPECT_EQ(std::memcmp(bytes, code, 5), 0);
}

// Random address spaces built by an independent table writer: every mapped page of every
// size translates to what was mapped, with random flag bits the walk must ignore, and every
// other address is not present.
struct Layout {
    PagingContext context;
    int levels;         // table levels, top first
    u32 entry_bytes;    // 4 (32-bit paging) or 8
    u32 shift[4];       // linear-address bit where each level's index starts
    u32 index_bits[4];  // width of each level's index
    bool large_leaf[4]; // a page may be mapped at this level (PS=1)
    u64 table_noise[4]; // flag bits of table pointers the walk ignores
    u64 leaf_noise;     // flag bits of leaves the walk ignores (A, D, G, PAT, ...)
    u64 max_gpa;        // mapped frames stay below this
};

class RandomAddressSpace {
  public:
    RandomAddressSpace(const Layout& layout, u32 seed) : layout_(layout), rng_(seed) {
        root_ = allocate_table();
        layout_.context.cr3 = root_;
    }

    // Maps `linear` with a page of the size of `level` (0 = top); false when it collides.
    bool map(u64 linear, int level, u64 gpa) {
        u64 table = root_;
        for (int l = 0; l < layout_.levels; ++l) {
            const u64 index = (linear >> layout_.shift[l]) & ((1ull << layout_.index_bits[l]) - 1);
            const u64 slot = table + index * layout_.entry_bytes;
            const u64 entry = read_entry(slot);
            const bool last = l == layout_.levels - 1;
            if (l == level) {
                if (entry & p)
                    return false;
                u64 value = gpa | p | (rng_() & layout_.leaf_noise);
                if (!last) {
                    value |= ps;
                    if (rng_() % 2)
                        value |= 1 << 12; // PAT of a large page
                    if (layout_.entry_bytes == 4)
                        value |= ((gpa >> 32) & 0xFF) << 13; // PSE-36
                }
                write_entry(slot, value);
                return true;
            }
            if (entry & p) {
                if (layout_.large_leaf[l] && (entry & ps))
                    return false; // inside a large page
                table = entry & 0x000FFFFFFFFFF000ull;
                continue;
            }
            const u64 next = allocate_table();
            write_entry(slot, next | p | (rng_() & layout_.table_noise[l]));
            table = next;
        }
        return false;
    }

    FakeGuestMemory memory;
    const PagingContext& context() const { return layout_.context; }

  private:
    u64 allocate_table() {
        const u64 table = next_table_;
        next_table_ += 0x1000;
        memory.add_page(table);
        return table;
    }
    u64 read_entry(u64 gpa) {
        u64 value = 0;
        GuestPhysicalReader reader = memory.reader();
        EXPECT_TRUE(reader.read(reader.context, gpa, &value, layout_.entry_bytes));
        return value;
    }
    void write_entry(u64 gpa, u64 value) { memory.write(gpa, &value, layout_.entry_bytes); }

    Layout layout_;
    std::mt19937_64 rng_;
    u64 root_ = 0;
    u64 next_table_ = 0x100000;
};

void check_random_address_space(const Layout& layout, u64 linear_bits, bool canonical) {
    RandomAddressSpace space(layout, 1234);
    std::mt19937_64 rng(99);
    struct Region {
        u64 size, gpa;
    };
    std::map<u64, Region> regions; // linear base → page
    auto canonical_of = [&](u64 a) {
        a &= (1ull << linear_bits) - 1;
        if (canonical && (a >> (linear_bits - 1)))
            a |= ~((1ull << linear_bits) - 1);
        return a;
    };
    for (int i = 0; i < 400; ++i) {
        int level = layout.levels - 1;
        const int roll = static_cast<int>(rng() % 8);
        for (int l = 0; l < layout.levels - 1; ++l) {
            if (layout.large_leaf[l] && roll == l)
                level = l;
        }
        const u64 size = 1ull << layout.shift[level];
        const u64 linear = canonical_of(rng()) & ~(size - 1);
        // 32-bit paging: 4 KiB frames are 32-bit; only 4 MiB pages reach higher (PSE-36).
        const bool small32 = layout.entry_bytes == 4 && level == layout.levels - 1;
        const u64 gpa = (rng() % (small32 ? 1ull << 32 : layout.max_gpa)) & ~(size - 1);
        if (space.map(linear, level, gpa))
            regions[linear] = {size, gpa};
    }
    ASSERT_GT(regions.size(), 300u);

    auto expected = [&](u64 a) -> const std::pair<const u64, Region>* {
        auto it = regions.upper_bound(a);
        if (it == regions.begin())
            return nullptr;
        --it;
        return a - it->first < it->second.size ? &*it : nullptr;
    };
    GuestPhysicalReader reader = space.memory.reader();
    u32 hits = 0, misses = 0;
    for (const auto& [linear, region] : regions) {
        for (int k = 0; k < 8; ++k) {
            // Inside the page, and nearby (same tables, other entries).
            const u64 inside = linear + rng() % region.size;
            const u64 near = canonical_of(linear ^ (rng() & ((1ull << 32) - 1)));
            for (const u64 a : {inside, near}) {
                const Translation t = translate_linear(space.context(), a, reader);
                if (const auto* hit = expected(a)) {
                    ++hits;
                    ASSERT_EQ(t.status, WalkStatus::ok) << std::hex << a;
                    ASSERT_EQ(t.gpa, hit->second.gpa + (a - hit->first)) << std::hex << a;
                } else {
                    ++misses;
                    ASSERT_EQ(t.status, WalkStatus::not_present) << std::hex << a;
                }
            }
        }
    }
    EXPECT_GT(hits, 1000u);
    EXPECT_GT(misses, 100u);
}

TEST(GuestPaging, RandomFourLevelAddressSpace) {
    Layout layout{};
    layout.context = {cr0_pe | cr0_pg, 0, cr4_pae, efer_lme | efer_lma | efer_nxe};
    layout.levels = 4;
    layout.entry_bytes = 8;
    const u32 shifts[] = {39, 30, 21, 12};
    for (int l = 0; l < 4; ++l) {
        layout.shift[l] = shifts[l];
        layout.index_bits[l] = 9;
        // RW, US, PWT, PCD, A, ignored 6 and 8-11, ignored 52-62, XD (NXE on)
        layout.table_noise[l] = 0x7E | 0xF40 | (0x7FFull << 52) | (1ull << 63);
    }
    layout.large_leaf[1] = layout.large_leaf[2] = true; // 1 GiB, 2 MiB
    layout.leaf_noise = 0x7E | 0xF00 | (0x7FFull << 52) | (1ull << 63);
    layout.max_gpa = 1ull << 46;
    check_random_address_space(layout, 48, true);
}

TEST(GuestPaging, RandomPaeAddressSpace) {
    Layout layout{};
    layout.context = {cr0_pe | cr0_pg, 0, cr4_pae, efer_nxe};
    layout.context.physical_address_bits = 40;
    layout.levels = 3;
    layout.entry_bytes = 8;
    const u32 shifts[] = {30, 21, 12}, bits[] = {2, 9, 9};
    for (int l = 0; l < 3; ++l) {
        layout.shift[l] = shifts[l];
        layout.index_bits[l] = bits[l];
        layout.table_noise[l] = 0x7E | 0xF40 | (1ull << 63);
    }
    layout.table_noise[0] = 0x18 | 0xE00; // PDPTE: PWT, PCD, ignored 11:9; the rest reserved
    layout.large_leaf[1] = true;          // 2 MiB
    layout.leaf_noise = 0x7E | 0xF00 | (1ull << 63);
    layout.max_gpa = 1ull << 40;
    check_random_address_space(layout, 32, false);
}

TEST(GuestPaging, Random32BitAddressSpaceWithPse36) {
    Layout layout{};
    layout.context = {cr0_pe | cr0_pg, 0, cr4_pse, 0};
    layout.context.physical_address_bits = 40;
    layout.levels = 2;
    layout.entry_bytes = 4;
    layout.shift[0] = 22;
    layout.shift[1] = 12;
    layout.index_bits[0] = layout.index_bits[1] = 10;
    layout.table_noise[0] = 0x7E | 0xF00; // not PS
    layout.large_leaf[0] = true;          // 4 MiB
    layout.leaf_noise = 0x7E | 0xF00;
    layout.max_gpa = 1ull << 40;
    check_random_address_space(layout, 32, false);
}

} // namespace
} // namespace godwit::hv::x86
