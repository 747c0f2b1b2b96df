// Memory types from the MTRRs (Intel SDM Vol. 3A, 13.11 "Memory Type Range Registers"), so
// EPT leaf entries carry the type the firmware chose for that memory (RAM write-back, MMIO
// uncacheable). Pure: the kernel reads the MSRs into MtrrState; tests build it by hand.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

struct MtrrState {
    bool enabled;       // IA32_MTRR_DEF_TYPE.E
    bool fixed_enabled; // IA32_MTRR_DEF_TYPE.FE (and MTRRCAP.FIX)
    u8 default_type;
    u64 fixed[11]; // 64K_00000, 16K_80000, 16K_A0000, 4K_C0000 ... 4K_F8000
    u32 variable_count;
    u64 variable_base[16];     // IA32_MTRR_PHYSBASEn
    u64 variable_mask[16];     // IA32_MTRR_PHYSMASKn (bit 11 = valid)
    u64 physical_address_mask; // (1 << MAXPHYADDR) - 1
};

inline constexpr u8 mtrr_uc = 0, mtrr_wc = 1, mtrr_wt = 4, mtrr_wp = 5, mtrr_wb = 6;

// The effective MTRR memory type of the byte at `address` (13.11.4.1: UC wins; WT beats WB;
// other overlaps are undefined and treated as UC).
u8 mtrr_type_of(const MtrrState& s, u64 address);

// The type of the whole range [address, address+length), or `mixed` when it is not uniform
// (the caller then maps it with smaller pages).
inline constexpr u8 mtrr_mixed = 0xFF;
u8 mtrr_type_of_range(const MtrrState& s, u64 address, u64 length);

// The same for a naturally aligned power-of-two block (base % size == 0), without sampling
// every page: cheap enough to plan an identity map of the whole physical address space.
u8 mtrr_type_of_block(const MtrrState& s, u64 base, u64 size);

} // namespace godwit::hv
