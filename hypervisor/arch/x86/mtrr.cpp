#include "arch/x86/mtrr.hpp"

namespace godwit::hv {
namespace {

u8 fixed_type(const MtrrState& s, u64 a) {
    // 0-512 KiB: 8 x 64 KiB; 512-768 KiB: 16 x 16 KiB; 768 KiB-1 MiB: 64 x 4 KiB.
    u32 msr, byte;
    if (a < 0x80000) {
        msr = 0;
        byte = static_cast<u32>(a >> 16);
    } else if (a < 0xC0000) {
        u32 i = static_cast<u32>((a - 0x80000) >> 14);
        msr = 1 + i / 8;
        byte = i % 8;
    } else {
        u32 i = static_cast<u32>((a - 0xC0000) >> 12);
        msr = 3 + i / 8;
        byte = i % 8;
    }
    return static_cast<u8>(s.fixed[msr] >> (8 * byte));
}

} // namespace

u8 mtrr_type_of(const MtrrState& s, u64 address) {
    if (!s.enabled)
        return mtrr_uc;
    if (s.fixed_enabled && address < 0x100000)
        return fixed_type(s, address);
    bool matched = false;
    u8 type = 0;
    for (u32 i = 0; i < s.variable_count && i < 16; ++i) {
        u64 mask = s.variable_mask[i];
        if ((mask & (1ull << 11)) == 0)
            continue;
        u64 m = mask & s.physical_address_mask & ~0xFFFull;
        if ((address & m) != (s.variable_base[i] & m))
            continue;
        u8 t = static_cast<u8>(s.variable_base[i] & 0xFF);
        if (!matched) {
            type = t;
            matched = true;
        } else if (t == mtrr_uc || type == mtrr_uc) {
            type = mtrr_uc;
        } else if ((t == mtrr_wt && type == mtrr_wb) || (t == mtrr_wb && type == mtrr_wt)) {
            type = mtrr_wt;
        } else if (t != type) {
            type = mtrr_uc; // undefined combination: be safe
        }
    }
    return matched ? type : s.default_type;
}

u8 mtrr_type_of_range(const MtrrState& s, u64 address, u64 length) {
    // Split into naturally aligned power-of-two blocks: each is answered without sampling.
    u64 end = align_down(address + length + page_size - 1, page_size);
    u8 type = mtrr_mixed;
    for (u64 a = align_down(address, page_size); a < end;) {
        u64 size = a == 0 ? (1ull << 62) : (a & (~a + 1)); // largest power of two dividing a
        while (size > end - a)
            size >>= 1;
        u8 t = mtrr_type_of_block(s, a, size);
        if (t == mtrr_mixed || (type != mtrr_mixed && t != type))
            return mtrr_mixed;
        type = t;
        a += size;
    }
    return type;
}

u8 mtrr_type_of_block(const MtrrState& s, u64 base, u64 size) {
    if (size <= page_size || !s.enabled)
        return mtrr_type_of(s, base);
    u64 end = base + size;
    if (s.fixed_enabled && base < 0x100000) {
        // Fixed ranges change type as often as every 4 KiB: sample them (at most 256).
        if (end > 0x100000)
            return mtrr_mixed; // a block reaching past 1 MiB is at least 2 MiB: never uniform
        u8 first = fixed_type(s, base);
        for (u64 a = base + page_size; a < end; a += page_size) {
            if (fixed_type(s, a) != first)
                return mtrr_mixed;
        }
        return first;
    }
    // A variable MTRR matches an address when (address & mask) == (base & mask). Over an
    // aligned power-of-two block only the mask bits below `size` can vary: when any are set
    // and the bits above agree, the MTRR covers part of the block, so the type is mixed.
    for (u32 i = 0; i < s.variable_count && i < 16; ++i) {
        u64 mask = s.variable_mask[i];
        if ((mask & (1ull << 11)) == 0)
            continue;
        u64 m = mask & s.physical_address_mask & ~0xFFFull;
        u64 low = m & (size - 1);
        if (low == 0)
            continue;
        u64 high = m & ~(size - 1);
        if ((base & high) == (s.variable_base[i] & high))
            return mtrr_mixed;
    }
    return mtrr_type_of(s, base);
}

} // namespace godwit::hv
