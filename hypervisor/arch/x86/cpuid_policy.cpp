#include "arch/x86/cpuid_policy.hpp"

#include "abi/godwit_hypercall.h"

namespace godwit::hv {

CpuidValues guest_cpuid(u32 leaf, u32 subleaf, CpuidValues host, u64 guest_cr4,
                        CpuidQuirks quirks) {
    constexpr u64 cr4_osxsave = 1ull << 18, cr4_pke = 1ull << 22;
    CpuidValues r = host;
    if (leaf == 1) {
        r.ecx |= 1u << 31;
        r.ecx &= ~(1u << 5);
        r.ecx = (r.ecx & ~(1u << 27)) | ((guest_cr4 & cr4_osxsave) ? 1u << 27 : 0);
        if (quirks.hide_machine_check)
            r.edx &= ~((1u << 7) | (1u << 14));
    } else if (leaf == 7 && subleaf == 0) {
        r.ecx = (r.ecx & ~(1u << 4)) | ((guest_cr4 & cr4_pke) ? 1u << 4 : 0);
        if (quirks.hide_adx)
            r.ebx &= ~(1u << 19);
    } else if (leaf == 0x15 && quirks.tsc_hz != 0) {
        r = tsc_leaf15(quirks.tsc_hz);
    } else if (leaf == 0x16 && quirks.tsc_hz != 0) {
        r = tsc_leaf16(quirks.tsc_hz, host);
    } else if (leaf == GODWIT_CPUID_LEAF_SIGNATURE) {
        r = {GODWIT_CPUID_LEAF_ABI, GODWIT_CPUID_SIGNATURE_EBX, GODWIT_CPUID_SIGNATURE_ECX,
             GODWIT_CPUID_SIGNATURE_EDX};
    } else if (leaf == GODWIT_CPUID_LEAF_ABI) {
        r = {GODWIT_HC_ABI_VERSION, 0, 0, 0};
    } else if (is_hypervisor_leaf(leaf)) {
        r = {0, 0, 0, 0};
    }
    return r;
}

u64 advertised_tsc_hz(u32 max_basic_leaf, CpuidValues leaf15, CpuidValues leaf16) {
    u64 base_hz = max_basic_leaf >= 0x16 ? u64{leaf16.eax & 0xFFFF} * 1000000 : 0;
    if (max_basic_leaf >= 0x15 && leaf15.eax != 0 && leaf15.ebx != 0) {
        if (leaf15.ecx != 0)
            return u64{leaf15.ecx} * leaf15.ebx / leaf15.eax;
        if (base_hz != 0)
            return base_hz; // crystal = base x EAX/EBX, so TSC = base
    }
    return base_hz;
}

bool tsc_frequency_disagrees(u64 advertised_hz, u64 measured_hz) {
    if (advertised_hz == 0 || measured_hz == 0)
        return false;
    u64 difference =
        advertised_hz > measured_hz ? advertised_hz - measured_hz : measured_hz - advertised_hz;
    return difference * 50 > measured_hz;
}

CpuidValues tsc_leaf15(u64 tsc_hz) {
    // ECX is 32 bits: above 4.29 GHz say crystal = tsc_hz / n and ratio n/1.
    u64 n = tsc_hz / 0x100000000ull + 1;
    return {1, static_cast<u32>(n), static_cast<u32>(tsc_hz / n), 0};
}

CpuidValues tsc_leaf16(u64 tsc_hz, CpuidValues host) {
    u32 mhz = static_cast<u32>((tsc_hz + 500000) / 1000000);
    if (mhz == 0)
        mhz = 1;
    return {mhz, mhz, host.ecx, 0};
}

CpuidValues restrict_xsave_features(u32 leaf, u32 subleaf, CpuidValues r, u64 xfeatures,
                                    u32 area_bytes) {
    constexpr u64 mpx = 0x18, avx512 = 0xE0, pkru = 1ull << 9, amx = 3ull << 17;
    if (leaf == 7 && subleaf == 0) {
        if ((xfeatures & mpx) != mpx)
            r.ebx &= ~(1u << 14);
        if ((xfeatures & avx512) != avx512) {
            // F, DQ, IFMA, PF, ER, CD, BW, VL; VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ;
            // 4VNNIW, 4FMAPS, VP2INTERSECT, FP16.
            r.ebx &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
                       (1u << 30) | (1u << 31));
            r.ecx &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
            r.edx &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23));
        }
        if ((xfeatures & amx) != amx)
            r.edx &= ~((1u << 22) | (1u << 24) | (1u << 25));
        if ((xfeatures & pkru) == 0)
            r.ecx &= ~((1u << 3) | (1u << 4));
    } else if (leaf == 0xD) {
        if (subleaf == 0) {
            r.eax &= static_cast<u32>(xfeatures);
            r.edx &= static_cast<u32>(xfeatures >> 32);
            r.ecx = xfeatures != 0 ? area_bytes : 0;
        } else if (subleaf == 1) {
            r.eax &= ~(1u << 3); // XSAVES: not enabled for guests
            r.ecx = 0;
            r.edx = 0;
        } else if (subleaf >= 64 || ((xfeatures >> subleaf) & 1) == 0) {
            r = {0, 0, 0, 0};
        }
    }
    return r;
}

} // namespace godwit::hv
