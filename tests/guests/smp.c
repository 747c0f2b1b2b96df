/* smp: start every application processor with INIT-SIPI-SIPI through the xAPIC ICR
   (SDM vol. 3 section 8.4.4.1), count them in, and check a lock-protected shared counter. */
#include "guest.h"

#define AP_TRAMPOLINE 0x7000
#define MAX_CPUS 16
#define INCREMENTS_PER_CPU 20000
#define ICR_SHORTHAND_ALL_EXCLUDING_SELF (3u << 18)
#define ICR_LEVEL_ASSERT (1u << 14)
#define ICR_DELIVERY_PENDING (1u << 12)
#define ICR_MODE_INIT (5u << 8)
#define ICR_MODE_STARTUP (6u << 8)

extern char ap_trampoline_start[], ap_trampoline_end[];
/* ap_stacks + index * 4 KiB is the top of AP index's stack, index >= 1. */
char ap_stacks[MAX_CPUS * 4096] __attribute__((aligned(4096)));

static volatile uint32_t aps_online;
static volatile uint32_t shared_counter;
static spinlock counter_lock;

void ap_main(uint32_t index);
void ap_main(uint32_t index) {
    interrupts_load();
    uint32_t apic_id = apic_read(APIC_ID) >> 24;
    guest_printf("smp: AP %u online, APIC ID %u\n", index, apic_id);
    for (int i = 0; i < INCREMENTS_PER_CPU; ++i) {
        spin_lock(&counter_lock);
        shared_counter = shared_counter + 1;
        spin_unlock(&counter_lock);
    }
    __atomic_fetch_add(&aps_online, 1, __ATOMIC_SEQ_CST);
}

static void delay_cycles(uint64_t cycles) {
    uint64_t start = rdtsc();
    while (rdtsc() - start < cycles) {
        cpu_relax();
    }
}

static void send_ipi(uint32_t icr_low) {
    apic_write(APIC_ICR_HIGH, 0);
    apic_write(APIC_ICR_LOW, icr_low);
    while (apic_read(APIC_ICR_LOW) & ICR_DELIVERY_PENDING) {
        cpu_relax();
    }
}

int guest_main(void) {
    interrupts_init();
    pic_mask_all();
    uint32_t cpus = fw_cfg_cpu_count();
    guest_printf("smp: fw_cfg reports %u CPU(s), BSP APIC ID %u\n", cpus, apic_read(APIC_ID) >> 24);
    if (cpus < 2 || cpus > MAX_CPUS) {
        guest_printf("FAIL: need 2..%u CPUs, have %u\n", MAX_CPUS, cpus);
        return 2;
    }
    apic_write(APIC_SVR, 0x100 | 0xff);

    uint32_t size = (uint32_t)(ap_trampoline_end - ap_trampoline_start);
    __builtin_memcpy((void*)AP_TRAMPOLINE, ap_trampoline_start, size);

    send_ipi(ICR_SHORTHAND_ALL_EXCLUDING_SELF | ICR_LEVEL_ASSERT | ICR_MODE_INIT);
    delay_cycles(10000000); /* >= 10 ms on real hardware */
    for (int i = 0; i < 2; ++i) {
        send_ipi(ICR_SHORTHAND_ALL_EXCLUDING_SELF | ICR_MODE_STARTUP | (AP_TRAMPOLINE >> 12));
        delay_cycles(200000);
    }

    uint64_t start = rdtsc();
    while (aps_online < cpus - 1 && rdtsc() - start < 8000000000ull) {
        cpu_relax();
    }
    if (aps_online != cpus - 1) {
        guest_printf("FAIL: %u of %u APs came online\n", aps_online, cpus - 1);
        return 3;
    }
    for (int i = 0; i < INCREMENTS_PER_CPU; ++i) {
        spin_lock(&counter_lock);
        shared_counter = shared_counter + 1;
        spin_unlock(&counter_lock);
    }
    uint32_t expected = cpus * INCREMENTS_PER_CPU;
    guest_printf("smp: %u CPUs online, shared counter %u (expected %u)\n", cpus, shared_counter,
                 expected);
    if (shared_counter != expected) {
        guest_printf("FAIL: lost updates to the shared counter\n");
        return 4;
    }
    guest_printf("smp: PASS\n");
    return 0;
}
