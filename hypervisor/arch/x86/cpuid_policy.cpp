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

} // namespace godwit::hv
