/* cpuid_msr: CPUID leaves and MSRs a VMM must present consistently, and #GP delivery for an
   MSR that does not exist (SDM vol. 2 CPUID, vol. 4 MSR index). */
#include "guest.h"

#define IA32_TIME_STAMP_COUNTER 0x10
#define IA32_APIC_BASE 0x1b
#define IA32_PAT 0x277
#define IA32_EFER 0xc0000080
#define PAT_RESET_VALUE 0x0007040600070406ull
#define UNIMPLEMENTED_MSR 0x4b564dff /* reserved in the KVM range, never implemented */

static unsigned checks, failures;

static bool tcg_gap;

static void check(bool ok, const char* name, const char* detail_fmt, uint32_t a, uint32_t b) {
    ++checks;
    if (ok) {
        guest_printf("PASS %s\n", name);
        return;
    }
    if (tcg_gap) {
        guest_printf("TCG-GAP %s: ", name);
    } else {
        ++failures;
        guest_printf("FAIL %s: ", name);
    }
    guest_printf(detail_fmt, a, b);
    guest_printf("\n");
}

static volatile uint32_t general_protection_faults;
static void on_general_protection(struct interrupt_frame* frame) {
    ++general_protection_faults;
    frame->eip += 2; /* skip the faulting rdmsr/wrmsr (0f 32 / 0f 30) */
}

int guest_main(void) {
    interrupts_init();
    interrupt_set_handler(13, on_general_protection);

    struct cpuid_result leaf0 = cpuid(0, 0);
    char vendor[13];
    __builtin_memcpy(vendor + 0, &leaf0.ebx, 4);
    __builtin_memcpy(vendor + 4, &leaf0.edx, 4);
    __builtin_memcpy(vendor + 8, &leaf0.ecx, 4);
    vendor[12] = 0;
    guest_printf("cpuid: vendor '%s' max leaf 0x%x\n", vendor, leaf0.eax);
    check(leaf0.eax >= 1, "cpuid.max_leaf", "max leaf 0x%x, want >= 0x%x", leaf0.eax, 1);

    struct cpuid_result leaf1 = cpuid(1, 0);
    const uint32_t needed_edx = (1u << 0) | (1u << 4) | (1u << 5) | (1u << 9) | (1u << 16);
    check((leaf1.edx & needed_edx) == needed_edx, "cpuid.1.edx.fpu_tsc_msr_apic_pat",
          "edx 0x%x lacks 0x%x", leaf1.edx, needed_edx & ~leaf1.edx);
    uint32_t apic_id = apic_read(APIC_ID) >> 24;
    check(leaf1.ebx >> 24 == apic_id, "cpuid.1.ebx.apic_id_matches_lapic",
          "cpuid says %u, LAPIC says %u", leaf1.ebx >> 24, apic_id);

    /* QEMU TCG (no KVM) returns 0 for unknown MSRs and for IA32_TIME_STAMP_COUNTER instead of
       raising #GP / reading the TSC; those checks are reported, not counted, only there. */
    struct cpuid_result hv = cpuid(0x40000000, 0);
    bool tcg = (leaf1.ecx & (1u << 31)) && hv.ebx == 0x54474354 && hv.ecx == 0x43544743 &&
               hv.edx == 0x47435447; /* "TCGTCGTCGTCG" */
    if (tcg) {
        guest_printf("cpuid: running under QEMU TCG, its MSR gaps are not counted\n");
    }

    struct cpuid_result ext = cpuid(0x80000000, 0);
    check(ext.eax >= 0x80000001, "cpuid.extended_max_leaf", "max 0x%x, want >= 0x%x", ext.eax,
          0x80000001);

    uint64_t apic_base = rdmsr(IA32_APIC_BASE);
    check((apic_base & 0xfffff000) == APIC_BASE && (apic_base & (1u << 11)) &&
              (apic_base & (1u << 8)),
          "msr.apic_base.bsp_enabled_at_fee00000", "value 0x%x (high 0x%x)", (uint32_t)apic_base,
          (uint32_t)(apic_base >> 32));

    uint64_t pat = rdmsr(IA32_PAT);
    check(pat == PAT_RESET_VALUE, "msr.pat.reset_value", "0x%x_%x", (uint32_t)(pat >> 32),
          (uint32_t)pat);
    const uint64_t new_pat = 0x0007010600070106ull;
    wrmsr(IA32_PAT, new_pat);
    uint64_t read_back = rdmsr(IA32_PAT);
    check(read_back == new_pat, "msr.pat.write_read_back", "0x%x_%x", (uint32_t)(read_back >> 32),
          (uint32_t)read_back);
    wrmsr(IA32_PAT, pat);

    uint64_t efer = rdmsr(IA32_EFER);
    check((efer & ((1u << 8) | (1u << 10))) == 0, "msr.efer.long_mode_off_in_32bit_entry",
          "EFER low 0x%x high 0x%x", (uint32_t)efer, (uint32_t)(efer >> 32));

    tcg_gap = tcg;
    uint64_t t0 = rdtsc();
    uint64_t tsc_msr = rdmsr(IA32_TIME_STAMP_COUNTER);
    uint64_t t1 = rdtsc();
    check(t0 < t1 && t0 <= tsc_msr && tsc_msr <= t1, "tsc.monotonic_and_msr_consistent",
          "rdtsc delta low 0x%x, msr low 0x%x", (uint32_t)(t1 - t0), (uint32_t)tsc_msr);

    general_protection_faults = 0;
    (void)rdmsr(UNIMPLEMENTED_MSR);
    check(general_protection_faults == 1, "msr.unimplemented_rdmsr_raises_gp", "%u #GP, want %u",
          general_protection_faults, 1);
    wrmsr(UNIMPLEMENTED_MSR, 1);
    check(general_protection_faults == 2, "msr.unimplemented_wrmsr_raises_gp", "%u #GP, want %u",
          general_protection_faults, 2);

    guest_printf("cpuid_msr: %u checks, %u failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
