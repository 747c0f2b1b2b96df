#include "arch/x86/guest_paging.hpp"

namespace godwit::hv::x86 {
namespace {

constexpr u64 bit(u32 n) {
    return 1ull << n;
}
// Bits hi..lo inclusive; empty when hi < lo.
constexpr u64 bit_range(u32 hi, u32 lo) {
    if (hi < lo)
        return 0;
    const u64 upto_hi = hi >= 63 ? ~0ull : bit(hi + 1) - 1;
    return upto_hi & ~(bit(lo) - 1);
}

constexpr u64 cr0_pg = bit(31);
constexpr u64 cr4_pse = bit(4), cr4_pae = bit(5), cr4_la57 = bit(12);
constexpr u64 efer_lma = bit(10), efer_nxe = bit(11);
constexpr u64 entry_present = bit(0), entry_page_size = bit(7), entry_execute_disable = bit(63);

struct Walker {
    const PagingContext& context;
    GuestPhysicalReader& reader;
    u32 maxphyaddr;

    // Reads a 4- or 8-byte paging-structure entry (little-endian, as the guest wrote it).
    bool read_entry(u64 gpa, u32 size, u64& entry) const {
        u8 raw[8] = {};
        if (!reader.read(reader.context, gpa, raw, size))
            return false;
        entry = 0;
        for (u32 i = 0; i < size; ++i)
            entry |= u64{raw[i]} << (8 * i);
        return true;
    }
    // Address bits M-1..12 of a 64-bit entry: the next table or the 4 KiB frame.
    u64 frame_of(u64 entry) const { return entry & bit_range(maxphyaddr - 1, 12); }
    // Bits 51..M, and XD when EFER.NXE=0 (4.4.2, 4.5.4 tables).
    u64 reserved_above_maxphyaddr() const { return bit_range(51, maxphyaddr); }
    u64 reserved_execute_disable() const {
        return (context.efer & efer_nxe) ? 0 : entry_execute_disable;
    }
};

Translation fail(WalkStatus status) {
    return {0, status};
}

// 4.3: two levels of 4-byte entries, 4 MiB pages with CR4.PSE (PSE-36 puts physical address
// bits 39:32 in PDE bits 20:13).
Translation walk_32bit(const Walker& w, u32 linear) {
    u64 pde = 0;
    if (!w.read_entry((w.context.cr3 & 0xFFFFF000) | ((linear >> 22) << 2), 4, pde))
        return fail(WalkStatus::not_ram);
    if (!(pde & entry_present))
        return fail(WalkStatus::not_present);
    if ((w.context.cr4 & cr4_pse) && (pde & entry_page_size)) {
        const u32 high_bits = w.maxphyaddr < 40 ? w.maxphyaddr - 32 : 8; // PSE-36 bits used
        if (pde & (bit(21) | bit_range(20, 13 + high_bits)))
            return fail(WalkStatus::reserved_bit);
        const u64 high = ((pde >> 13) & 0xFF) << 32;
        return {high | (pde & 0xFFC00000) | (linear & 0x3FFFFF), WalkStatus::ok};
    }
    u64 pte = 0;
    if (!w.read_entry((pde & 0xFFFFF000) | (((linear >> 12) & 0x3FF) << 2), 4, pte))
        return fail(WalkStatus::not_ram);
    if (!(pte & entry_present))
        return fail(WalkStatus::not_present);
    return {(pte & 0xFFFFF000) | (linear & 0xFFF), WalkStatus::ok};
}

// 4.4: four PDPTEs, then 8-byte page directory and page table; 2 MiB pages always allowed.
// In PAE entries bits 62..M are reserved (4.4.2, tables 4-8 to 4-11).
Translation walk_pae(const Walker& w, u32 linear) {
    const u32 pdpt_index = linear >> 30;
    u64 pdpte = 0;
    if (w.context.pae_pdptes != nullptr)
        pdpte = w.context.pae_pdptes[pdpt_index];
    else if (!w.read_entry((w.context.cr3 & 0xFFFFFFE0) + pdpt_index * 8, 8, pdpte))
        return fail(WalkStatus::not_ram);
    if (!(pdpte & entry_present))
        return fail(WalkStatus::not_present);
    if (pdpte & (bit_range(63, w.maxphyaddr) | bit_range(2, 1) | bit_range(8, 5)))
        return fail(WalkStatus::reserved_bit);

    const u64 reserved = bit_range(62, w.maxphyaddr) | w.reserved_execute_disable();
    u64 pde = 0;
    if (!w.read_entry(w.frame_of(pdpte) + ((linear >> 21) & 0x1FF) * 8, 8, pde))
        return fail(WalkStatus::not_ram);
    if (!(pde & entry_present))
        return fail(WalkStatus::not_present);
    if (pde & entry_page_size) {
        if (pde & (reserved | bit_range(20, 13)))
            return fail(WalkStatus::reserved_bit);
        return {(pde & bit_range(w.maxphyaddr - 1, 21)) | (linear & 0x1FFFFF), WalkStatus::ok};
    }
    if (pde & reserved)
        return fail(WalkStatus::reserved_bit);

    u64 pte = 0;
    if (!w.read_entry(w.frame_of(pde) + ((linear >> 12) & 0x1FF) * 8, 8, pte))
        return fail(WalkStatus::not_ram);
    if (!(pte & entry_present))
        return fail(WalkStatus::not_present);
    if (pte & reserved)
        return fail(WalkStatus::reserved_bit);
    return {w.frame_of(pte) | (linear & 0xFFF), WalkStatus::ok};
}

// 4.5: PML4 → PDPT (1 GiB pages) → PD (2 MiB pages) → PT. Bits 62:52 are ignored (or
// protection keys), 51..M and XD without EFER.NXE are reserved; PS is reserved in a PML4E.
Translation walk_4level(const Walker& w, u64 linear) {
    const u64 upper = linear >> 47;
    if (upper != 0 && upper != (1ull << 17) - 1)
        return fail(WalkStatus::non_canonical);

    const u64 reserved = w.reserved_above_maxphyaddr() | w.reserved_execute_disable();
    u64 table = w.frame_of(w.context.cr3);
    for (u32 level = 4; level >= 1; --level) {
        const u32 shift = 12 + 9 * (level - 1);
        u64 entry = 0;
        if (!w.read_entry(table + ((linear >> shift) & 0x1FF) * 8, 8, entry))
            return fail(WalkStatus::not_ram);
        if (!(entry & entry_present))
            return fail(WalkStatus::not_present);
        if (entry & reserved)
            return fail(WalkStatus::reserved_bit);
        const bool large = level != 1 && (entry & entry_page_size);
        if (level == 4 && large)
            return fail(WalkStatus::reserved_bit);
        if (large) {
            // A 1 GiB (level 3) or 2 MiB (level 2) page: bits shift-1..13 are reserved (bit 12
            // is PAT).
            if (entry & bit_range(shift - 1, 13))
                return fail(WalkStatus::reserved_bit);
            const u64 offset_mask = bit(shift) - 1;
            return {(entry & bit_range(w.maxphyaddr - 1, shift)) | (linear & offset_mask),
                    WalkStatus::ok};
        }
        if (level == 1)
            return {w.frame_of(entry) | (linear & 0xFFF), WalkStatus::ok};
        table = w.frame_of(entry);
    }
    return fail(WalkStatus::not_present); // not reached: level 1 always returns
}

u32 clamp_maxphyaddr(u8 bits) {
    if (bits < 32)
        return 32;
    return bits > 52 ? 52 : bits;
}

} // namespace

PagingMode paging_mode(const PagingContext& context) {
    if (!(context.cr0 & cr0_pg))
        return PagingMode::none;
    if (!(context.cr4 & cr4_pae))
        return PagingMode::bits32;
    if (!(context.efer & efer_lma))
        return PagingMode::pae;
    return (context.cr4 & cr4_la57) ? PagingMode::level5 : PagingMode::level4;
}

Translation translate_linear(const PagingContext& context, u64 linear,
                             GuestPhysicalReader& reader) {
    const Walker walker{context, reader, clamp_maxphyaddr(context.physical_address_bits)};
    switch (paging_mode(context)) {
    case PagingMode::none:
        return {linear & 0xFFFFFFFF, WalkStatus::ok};
    case PagingMode::bits32:
        return walk_32bit(walker, static_cast<u32>(linear));
    case PagingMode::pae:
        return walk_pae(walker, static_cast<u32>(linear));
    case PagingMode::level4:
        return walk_4level(walker, linear);
    case PagingMode::level5:
        break;
    }
    return fail(WalkStatus::unsupported);
}

u32 fetch_instruction(const PagingContext& context, u64 linear, u8 (&bytes)[15],
                      GuestPhysicalReader& reader) {
    const PagingMode mode = paging_mode(context);
    const bool wraps_at_4g = mode != PagingMode::level4 && mode != PagingMode::level5;
    u32 done = 0;
    // At most two pages (15 bytes), each translated on its own: the next page of the same
    // large page translates the same way, a new 4 KiB page may map anywhere or nowhere.
    while (done < max_instruction_length) {
        u64 address = linear + done;
        if (wraps_at_4g)
            address &= 0xFFFFFFFF;
        const Translation t = translate_linear(context, address, reader);
        if (t.status != WalkStatus::ok)
            break;
        const u64 left_in_page = page_size - (address & (page_size - 1));
        const u32 wanted = max_instruction_length - done;
        const u32 chunk = left_in_page < wanted ? static_cast<u32>(left_in_page) : wanted;
        if (!reader.read(reader.context, t.gpa, bytes + done, chunk))
            break;
        done += chunk;
    }
    return done;
}

} // namespace godwit::hv::x86
