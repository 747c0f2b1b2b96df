/* apic_timer: the xAPIC timer (SDM vol. 3 section 10.5.4) in periodic and one-shot mode,
   delivered through the IDT and acknowledged with EOI. */
#include "guest.h"

#define TIMER_VECTOR 0x40
#define SPURIOUS_VECTOR 0xff
#define LVT_MASKED (1u << 16)
#define LVT_PERIODIC (1u << 17)

static volatile uint32_t ticks;

static void on_timer(struct interrupt_frame* frame) {
    (void)frame;
    ++ticks;
    apic_write(APIC_EOI, 0);
}

static void on_spurious(struct interrupt_frame* frame) {
    (void)frame;
}

/* Wait until ticks reaches target or about max_cycles TSC cycles pass. */
static bool wait_for_ticks(uint32_t target, uint64_t max_cycles) {
    uint64_t start = rdtsc();
    while (ticks < target) {
        if (rdtsc() - start > max_cycles) {
            return false;
        }
        cpu_relax();
    }
    return true;
}

int guest_main(void) {
    const uint64_t timeout_cycles = 4000000000ull;
    interrupts_init();
    interrupt_set_handler(TIMER_VECTOR, on_timer);
    interrupt_set_handler(SPURIOUS_VECTOR, on_spurious);
    pic_mask_all();

    apic_write(APIC_SVR, 0x100 | SPURIOUS_VECTOR); /* software enable */
    apic_write(APIC_TPR, 0);
    apic_write(APIC_TIMER_DIVIDE, 0x3); /* divide by 16 */
    apic_write(APIC_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR);
    apic_write(APIC_TIMER_INITIAL, 200000);
    uint32_t current = apic_read(APIC_TIMER_CURRENT);
    guest_printf("apic_timer: periodic, initial 200000, current %u\n", current);
    __asm__ volatile("sti");
    bool periodic_ok = wait_for_ticks(5, timeout_cycles);
    apic_write(APIC_LVT_TIMER, LVT_MASKED | TIMER_VECTOR);
    apic_write(APIC_TIMER_INITIAL, 0);
    guest_printf("apic_timer: %u periodic ticks\n", ticks);
    if (!periodic_ok) {
        guest_printf("FAIL: fewer than 5 periodic timer interrupts\n");
        return 1;
    }

    /* One-shot: exactly one interrupt, then the counter stays at zero. */
    uint32_t before = ticks;
    apic_write(APIC_LVT_TIMER, TIMER_VECTOR);
    apic_write(APIC_TIMER_INITIAL, 100000);
    if (!wait_for_ticks(before + 1, timeout_cycles)) {
        guest_printf("FAIL: no one-shot timer interrupt\n");
        return 2;
    }
    uint64_t start = rdtsc();
    while (rdtsc() - start < 50000000ull) {
        cpu_relax();
    }
    __asm__ volatile("cli");
    uint32_t one_shot = ticks - before;
    guest_printf("apic_timer: %u one-shot tick(s), current count %u\n", one_shot,
                 apic_read(APIC_TIMER_CURRENT));
    if (one_shot != 1 || apic_read(APIC_TIMER_CURRENT) != 0) {
        guest_printf("FAIL: one-shot timer fired %u times\n", one_shot);
        return 3;
    }
    guest_printf("apic_timer: PASS\n");
    return 0;
}
