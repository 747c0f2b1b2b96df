// The guest's own page tables, walked in software (Intel SDM Vol. 3A chapter 4: 4.3 32-bit
// paging, 4.4 PAE paging, 4.5 4-level paging; 5-level paging is reported as unsupported).
// An EPT violation on an MMIO page gives the guest-physical address of the data but not the
// instruction: the hypervisor translates CS.base+RIP through these tables to fetch it.
//
// Only translation: no permission checks and no accessed/dirty updates, because the CPU
// already fetched the same bytes with the guest's rights and set the bits itself. Pure: the
// tables are read through GuestPhysicalReader (the partition's RAM behind its EPT), so the
// walker is unit-tested and fuzzed on the host over a fake guest memory.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv::x86 {

// Reads `length` bytes of guest-physical memory at `gpa` into `dst`. Returns false when any
// byte is not guest RAM (MMIO, a hole, beyond the partition); `dst` is then unspecified.
struct GuestPhysicalReader {
    bool (*read)(void* context, u64 gpa, void* dst, u32 length);
    void* context;
};

// The guest's paging controls (from the VMCS guest-state area).
struct PagingContext {
    u64 cr0, cr3, cr4, efer;
    // PAE paging only: the four PDPTEs the CPU loaded at the last MOV CR3 (with EPT, the
    // VMCS GUEST_PDPTE0..3 fields). Null = read them from the table at CR3, which is the same
    // unless the guest rewrote that table without reloading CR3.
    const u64* pae_pdptes = nullptr;
    // MAXPHYADDR (CPUID 0x80000008 EAX[7:0] as the guest sees it): address bits at and
    // above it in a paging-structure entry are reserved.
    u8 physical_address_bits = 52;
};

enum class WalkStatus : u8 {
    ok,
    not_present,   // an entry on the way has P=0
    reserved_bit,  // an entry on the way sets a reserved bit (the CPU would raise #PF)
    not_ram,       // a paging structure lies outside guest RAM (the reader failed)
    unsupported,   // 5-level paging (CR4.LA57)
    non_canonical, // 4-level paging: bits 63:47 of the linear address are not all equal
};

struct Translation {
    u64 gpa; // valid when status == ok
    WalkStatus status;
};

// The paging mode CR0.PG, CR4.PAE and EFER.LMA select (SDM Vol. 3A, 4.1.1).
enum class PagingMode : u8 { none, bits32, pae, level4, level5 };
PagingMode paging_mode(const PagingContext& context);

// Translates a linear address. Paging off (CR0.PG=0) is the identity, truncated to 32 bits
// (paging is always on in long mode). Outside long mode the linear address wraps at 4 GiB.
Translation translate_linear(const PagingContext& context, u64 linear, GuestPhysicalReader& reader);

// Fetches up to 15 instruction bytes (the longest x86 instruction) at `linear`; the bytes may
// span two pages. Returns how many bytes were read: fewer than 15 when the second page does
// not translate or is not RAM (the decoder then reports `truncated` only if it needed them),
// 0 when the first byte cannot be read.
inline constexpr u32 max_instruction_length = 15;
u32 fetch_instruction(const PagingContext& context, u64 linear, u8 (&bytes)[15],
                      GuestPhysicalReader& reader);

} // namespace godwit::hv::x86
