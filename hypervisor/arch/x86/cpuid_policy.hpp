// What a Godwit guest sees from CPUID (pure; unit-tested): the host's values, adjusted.
//  - leaf 1: ECX.hypervisor (bit 31) set; ECX.VMX (bit 5) cleared (no nested VT-x);
//    ECX.OSXSAVE (bit 27) mirrors the *guest's* CR4.OSXSAVE, not the host's.
//  - leaf 7.0: ECX.OSPKE (bit 4) mirrors the guest's CR4.PKE.
//  - leaf 0x40000000: "GodwitGodwit", highest hypervisor leaf 0x40000001;
//    leaf 0x40000001: EAX = hypercall ABI version (hypervisor/abi/godwit_hypercall.h).
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

struct CpuidValues {
    u32 eax, ebx, ecx, edx;
};

// Corrections for CPUs whose CPUID promises more than they implement, found by probing at
// boot (emulators: Bochs reports MCE/MCA but has no MCG_* MSRs, and Linux panics on them).
struct CpuidQuirks {
    bool hide_machine_check = false; // leaf 1 EDX.MCE (bit 7) and EDX.MCA (bit 14) cleared
    // Leaf 7.0 EBX.ADX (bit 19) cleared: the CPU's ADOX computes OF wrongly (Bochs 2.7 sets
    // it from the signed overflow, not the carry), and code that trusts CPUID, OpenSSL's
    // X25519 and P-256 among it, computes wrong results (TLS handshakes fail "bad record mac").
    bool hide_adx = false;
    // Nonzero: the TSC frequency measured at boot, which leaves 0x15 and 0x16 then report
    // instead of the CPU's (emulators: Bochs advertises 3.5 GHz while its TSC counts one per
    // emulated instruction, so Linux's clock ran 70x slow; see tsc_frequency_disagrees).
    u64 tsc_hz = 0;
};

// The TSC frequency a kernel takes from CPUID without calibrating (Intel SDM Vol. 3B 18.7.3,
// as Linux's native_calibrate_tsc reads it): leaf 0x15 crystal x EBX/EAX, the crystal from
// leaf 0x16's base frequency when ECX is 0; else leaf 0x16's base frequency (Linux's early
// value until it refines it). 0 when CPUID says nothing (the kernel then calibrates).
u64 advertised_tsc_hz(u32 max_basic_leaf, CpuidValues leaf15, CpuidValues leaf16);

// True when a measured frequency is usable and differs from the advertised one by more than
// 2 % (a PIT measurement over 20 ms is good to about 0.1 %).
bool tsc_frequency_disagrees(u64 advertised_hz, u64 measured_hz);

// Leaves 0x15 and 0x16 describing `tsc_hz` (TSC = crystal x 1/1, base = max = tsc_hz in MHz;
// 0x16 ECX, the bus frequency, stays the CPU's).
CpuidValues tsc_leaf15(u64 tsc_hz);
CpuidValues tsc_leaf16(u64 tsc_hz, CpuidValues host);

// `host` holds what the CPU returned for (leaf, subleaf); returns what the guest sees.
CpuidValues guest_cpuid(u32 leaf, u32 subleaf, CpuidValues host, u64 guest_cr4,
                        CpuidQuirks quirks = {});

// What a guest partition sees of XSAVE (leaf 7.0 and leaf 0xD, Intel SDM Vol. 1 13.2):
// only the XCR0 components in `xfeatures` (those the hypervisor switches for guests, 0 on a
// CPU without XSAVE): leaf 0xD.0 EDX:EAX masked and ECX = `area_bytes` (the standard-format
// size they need; EBX, the size for the current XCR0, is the CPU's as the guest's XCR0 is
// loaded when it asks), no XSAVES or IA32_XSS bits (0xD.1), zeros for sub-leaves of
// components it may not enable; leaf 7.0 loses MPX, AVX-512 and AMX when they are not
// offered. The root partition keeps the CPU's values.
CpuidValues restrict_xsave_features(u32 leaf, u32 subleaf, CpuidValues values, u64 xfeatures,
                                    u32 area_bytes);

// True when the leaf is answered by the hypervisor itself (no need to ask the CPU).
constexpr bool is_hypervisor_leaf(u32 leaf) {
    return leaf >= 0x40000000 && leaf <= 0x400000FF;
}

} // namespace godwit::hv
