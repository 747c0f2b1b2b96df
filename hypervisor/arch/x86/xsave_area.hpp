// The x87/SSE/AVX state a guest vCPU owns, in the standard (non-compacted) XSAVE format
// (Intel SDM Vol. 1, chapter 13: 13.4 the XSAVE area, 13.3 XCR0; Vol. 1, 10.5 the FXSAVE
// image that forms its legacy region). Pure (unit-tested on the host): which XCR0 values a
// guest may set, which saved states the hypervisor accepts (XRSTOR of a bad one would #GP
// the hypervisor), the architectural reset state, and the layout sized from CPUID 0xD.
#pragma once

#include "abi/godwit_hypercall.h"
#include "lib/types.hpp"

namespace godwit::hv::x86 {

// XSTATE components (XCR0 bits, Vol. 1 13.1).
inline constexpr u64 xfeature_x87 = 1ull << 0;
inline constexpr u64 xfeature_sse = 1ull << 1;
inline constexpr u64 xfeature_avx = 1ull << 2;
inline constexpr u64 xfeature_mpx = (1ull << 3) | (1ull << 4);                  // BNDREGS, BNDCSR
inline constexpr u64 xfeature_avx512 = (1ull << 5) | (1ull << 6) | (1ull << 7); // opmask, ZMM
inline constexpr u64 xfeature_pkru = 1ull << 9;
inline constexpr u64 xfeature_amx = (1ull << 17) | (1ull << 18); // TILECFG, TILEDATA
// What guests may enable (and what the hypervisor switches for them): x87, SSE, AVX,
// AVX-512 and PKRU. Not MPX (deprecated) nor AMX (8 KiB of tiles), nor supervisor states.
inline constexpr u64 guest_xfeature_policy =
    xfeature_x87 | xfeature_sse | xfeature_avx | xfeature_avx512 | xfeature_pkru;

// The legacy region (FXSAVE64 image, Vol. 1 Table 10-2) and the XSAVE header (13.4.2).
struct FxsaveImage {
    u16 fcw, fsw;
    u8 ftw, reserved0;
    u16 fop;
    u64 fip, fdp;
    u32 mxcsr, mxcsr_mask;
    u8 st[8][16];
    u8 xmm[16][16];
    u8 reserved1[96];
};
static_assert(sizeof(FxsaveImage) == GODWIT_FPU_LEGACY_BYTES);
static_assert(__builtin_offsetof(FxsaveImage, mxcsr) == 24);
static_assert(__builtin_offsetof(FxsaveImage, st) == 32);
static_assert(__builtin_offsetof(FxsaveImage, xmm) == 160);

struct XsaveHeader {
    u64 xstate_bv;
    u64 xcomp_bv;
    u64 reserved[6];
};
static_assert(sizeof(XsaveHeader) == GODWIT_FPU_HEADER_BYTES);
inline constexpr u32 xsave_header_offset = GODWIT_FPU_LEGACY_BYTES;
inline constexpr u32 xsave_min_bytes = GODWIT_FPU_LEGACY_BYTES + GODWIT_FPU_HEADER_BYTES;

// FNINIT's FCW (Vol. 1 8.1.5): what firmware leaves before an OS runs, and what fresh
// vCPUs get (as under KVM); the power-up value 0x40 is never seen by a guest OS.
inline constexpr u16 fcw_reset = 0x037F;
inline constexpr u32 mxcsr_reset = 0x1F80;        // Vol. 1 10.2.3
inline constexpr u32 mxcsr_mask_default = 0xFFBF; // when FXSAVE stores a zero mask (11.6.6)

// What this CPU gives guests: filled once from CPUID (leaf 1 ECX.XSAVE, leaf 0xD).
struct XsaveLayout {
    bool xsave = false; // XSAVE/XRSTOR and XCR0; else FXSAVE/FXRSTOR
    u64 features = 0;   // components switched for guests (host & policy)
    u32 area_bytes = 0; // standard-format bytes those components need
    u32 mxcsr_mask = mxcsr_mask_default;
    u32 offset[19] = {}; // component i's offset (i >= 2; CPUID 0xD.i EBX)
    u32 size[19] = {};   // component i's size (CPUID 0xD.i EAX)
};

// `host_xcr0_supported` = CPUID.(0DH,0) EDX:EAX; component offsets and sizes as CPUID.(0DH,i)
// reported them (only the entries for supported components are read).
XsaveLayout make_xsave_layout(bool xsave, u64 host_xcr0_supported, const u32* offsets,
                              const u32* sizes, u32 mxcsr_mask);

// An XCR0 value XSETBV accepts (Vol. 2B XSETBV, Vol. 1 13.3) with `allowed` the components
// permitted: x87 set, nothing outside `allowed`, AVX needs SSE, the AVX-512 group whole and
// with AVX, MPX and AMX pairs whole.
bool xcr0_valid(u64 value, u64 allowed);

// The FPU state of a fresh vCPU (power-up: FCW 0x37F, MXCSR 0x1F80, every register zero,
// XSTATE_BV 0 = every component in its initial configuration) into `area`
// (GODWIT_FPU_AREA_BYTES).
void reset_xsave_area(u8* area);

// GODWIT_HC_VCPU_SET_FPU's checks (Vol. 1 13.8.1, the #GP conditions of XRSTOR): format
// and reserved fields, area_bytes, XCR0 (as XSETBV), XSTATE_BV within `features` and each
// component present inside area_bytes, XCOMP_BV and the header's reserved bytes zero, MXCSR
// without bits outside the CPU's MXCSR_MASK. GODWIT_HC_OK or GODWIT_HC_BAD_ARGUMENT.
u64 check_fpu_state(const godwit_hc_vcpu_fpu& in, const XsaveLayout& layout);

// Without XSAVE, FXRSTOR loads the whole legacy region: components whose XSTATE_BV bit is
// clear get their initial values there first (x87: FCW 0x37F, the rest zero; SSE: XMM zero).
void apply_init_for_fxrstor(u8* area);

} // namespace godwit::hv::x86
