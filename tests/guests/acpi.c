/* acpi: find the ACPI tables the way an OS does (scan 0xE0000-0xFFFFF on 16-byte boundaries
   for "RSD PTR ", ACPI 6.4 section 5.2.5.1), check every checksum, compare the MADT's
   enabled processors with fw_cfg's CPU count, and check that the FADT's PM timer runs: it
   must never go backwards (modulo the width the FADT gives) and must pass 35795 ticks (10 ms
   at 3.579545 MHz) within a bounded number of reads. */
#include "guest.h"

static unsigned failures;

static void report(bool ok, const char* what) {
    guest_printf("%s %s\n", ok ? "PASS" : "FAIL", what);
    failures += ok ? 0 : 1;
}

static uint8_t checksum(const uint8_t* p, uint32_t n) {
    uint8_t sum = 0;
    for (uint32_t i = 0; i < n; ++i) {
        sum = (uint8_t)(sum + p[i]);
    }
    return sum;
}

static bool signature_is(const uint8_t* p, const char* s) {
    for (int i = 0; s[i]; ++i) {
        if (p[i] != (uint8_t)s[i]) {
            return false;
        }
    }
    return true;
}

static uint32_t load32(const uint8_t* p) {
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

int guest_main(void) {
    const uint8_t* rsdp = 0;
    for (uint32_t a = 0xE0000; a < 0x100000; a += 16) {
        const uint8_t* p = (const uint8_t*)a;
        if (signature_is(p, "RSD PTR ") && checksum(p, 20) == 0) {
            rsdp = p;
            break;
        }
    }
    if (!rsdp) {
        guest_printf("FAIL no RSDP in 0xE0000-0xFFFFF\n");
        return 1;
    }
    guest_printf("acpi: RSDP at 0x%x, revision %u\n", (uint32_t)rsdp, rsdp[15]);
    const uint8_t* rsdt = (const uint8_t*)load32(rsdp + 16);
    report(signature_is(rsdt, "RSDT") && checksum(rsdt, load32(rsdt + 4)) == 0,
           "rsdt.signature_and_checksum");

    const uint8_t *fadt = 0, *madt = 0;
    uint32_t entries = (load32(rsdt + 4) - 36) / 4;
    bool all_checksums_ok = true;
    for (uint32_t i = 0; i < entries; ++i) {
        const uint8_t* t = (const uint8_t*)load32(rsdt + 36 + 4 * i);
        bool ok = checksum(t, load32(t + 4)) == 0;
        all_checksums_ok = all_checksums_ok && ok;
        guest_printf("acpi: table %c%c%c%c at 0x%x, %u bytes, checksum %s\n", t[0], t[1], t[2],
                     t[3], (uint32_t)t, load32(t + 4), ok ? "ok" : "BAD");
        if (signature_is(t, "FACP")) {
            fadt = t;
        } else if (signature_is(t, "APIC")) {
            madt = t;
        }
    }
    report(all_checksums_ok, "tables.checksums");
    report(fadt != 0, "fadt.present");
    report(madt != 0, "madt.present");
    if (!fadt || !madt) {
        return 1;
    }

    uint32_t cpus = 0, ioapics = 0;
    for (uint32_t off = 44; off < load32(madt + 4); off += madt[off + 1]) {
        if (madt[off + 1] < 2) {
            break;
        }
        if (madt[off] == 0 && (load32(madt + off + 4) & 1)) {
            ++cpus;
        } else if (madt[off] == 1) {
            ++ioapics;
        }
    }
    uint32_t fw_cpus = fw_cfg_cpu_count();
    guest_printf("acpi: MADT lists %u enabled CPU(s) and %u IOAPIC(s); fw_cfg says %u CPU(s)\n",
                 cpus, ioapics, fw_cpus);
    report(cpus == fw_cpus, "madt.cpus_match_fw_cfg");
    report(ioapics >= 1, "madt.has_ioapic");

    uint16_t pm_timer = (uint16_t)load32(fadt + 76);
    bool wide = load32(fadt + 112) & (1u << 8);
    uint32_t mask = wide ? 0xffffffffu : 0x00ffffffu;
    guest_printf("acpi: PM timer at port 0x%x, %u-bit\n", pm_timer, wide ? 32 : 24);
    report(pm_timer != 0 && fadt[91] == 4, "fadt.pm_timer_block");
    uint32_t start = inl(pm_timer) & mask, previous = start, elapsed = 0;
    bool backwards = false;
    for (uint32_t reads = 0; reads < 50000000 && elapsed < 35795; ++reads) {
        uint32_t now = inl(pm_timer) & mask;
        uint32_t step = (now - previous) & mask;
        if (step > mask / 2) {
            backwards = true;
        }
        elapsed += step;
        previous = now;
    }
    guest_printf("acpi: PM timer advanced %u ticks\n", elapsed);
    report(!backwards, "pm_timer.monotonic");
    report(elapsed >= 35795, "pm_timer.advances_10ms");
    guest_printf("acpi: %u failed\n", failures);
    return failures == 0 ? 0 : 1;
}
