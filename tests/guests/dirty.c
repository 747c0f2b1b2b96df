/* dirty: the memory-dirtying guest for migration tests. Each pass increments byte 0 of every
   4 KiB page of [start, end) in order and prints a heartbeat "dirty: pass N ..." on COM1.
   Before incrementing it checks the byte still holds the pass number (mod 256), so a
   migration that loses or reorders a page is caught inside the guest.
   Range: from the first page after the kernel image to the end of the Multiboot memory
   region that contains it (or fw_cfg RAM size), limited by cmdline dirty_mb=<MiB>.
   cmdline passes=<N> stops after N passes with exit code 0; default 0 runs forever.
   cmdline idle_mcycles=<N> idles (HLT, woken by the LAPIC timer) for about N million TSC
   cycles after each pass: a guest with a moderate dirty rate that leaves its CPU to the
   host, as most real workloads do; default 0 dirties as fast as it can. The timer runs in
   TSC-deadline mode where CPUID has it, else one-shot counting N million APIC ticks.
   cmdline report_every=<N> prints the heartbeat for pass 1 and then every N passes (default
   1): a guest that stays in guest mode instead of exiting for its console. */
#include "guest.h"

#define PAGE 4096u
#define TIMER_VECTOR 0x40
#define SPURIOUS_VECTOR 0xff
#define LVT_TSC_DEADLINE (2u << 17)
#define MSR_TSC_DEADLINE 0x6E0u

static bool tsc_deadline; /* CPUID.1:ECX[24] */

static volatile uint32_t timer_ticks;

static void on_timer(struct interrupt_frame* frame) {
    (void)frame;
    ++timer_ticks;
    apic_write(APIC_EOI, 0);
}

static void on_spurious(struct interrupt_frame* frame) {
    (void)frame;
}

/* Sleeps about `cycles` TSC cycles in HLT (SDM Vol. 3A 10.5.4.1, TSC-deadline mode). */
static void idle_for(uint64_t cycles) {
    uint32_t seen = timer_ticks;
    if (tsc_deadline) {
        wrmsr(MSR_TSC_DEADLINE, rdtsc() + cycles);
    } else {
        apic_write(APIC_TIMER_INITIAL, cycles > 0xFFFFFFFFull ? 0xFFFFFFFFu : (uint32_t)cycles);
    }
    for (;;) {
        __asm__ volatile("cli");
        if (timer_ticks != seen) {
            break;
        }
        __asm__ volatile("sti; hlt"); /* STI's shadow: no wake-up is lost before the HLT */
    }
    __asm__ volatile("sti");
}

static uint32_t region_end_containing(uint32_t addr) {
    if (boot_info->flags & (1u << 6)) {
        uint32_t p = boot_info->mmap_addr, end = p + boot_info->mmap_length;
        while (p < end) {
            const struct mb1_mmap_entry* e = (const struct mb1_mmap_entry*)p;
            if (e->type == 1 && e->addr <= addr && addr < e->addr + e->len) {
                uint64_t region_end = e->addr + e->len;
                return region_end > 0xFFFFF000ull ? 0xFFFFF000u : (uint32_t)region_end;
            }
            p += e->size + 4;
        }
    }
    uint64_t ram = fw_cfg_ram_size();
    if (ram != 0) {
        return ram > 0xB0000000ull ? 0xB0000000u : (uint32_t)ram;
    }
    return 0x100000u + boot_info->mem_upper * 1024u;
}

int guest_main(void) {
    uint32_t start = ((uint32_t)__image_end + PAGE - 1) & ~(PAGE - 1);
    uint32_t end = region_end_containing(start) & ~(PAGE - 1);
    uint32_t limit_mb = cmdline_uint("dirty_mb", 0);
    if (limit_mb != 0 && limit_mb < (end - start) >> 20) {
        end = start + (limit_mb << 20);
    }
    uint32_t passes = cmdline_uint("passes", 0);
    uint32_t report_every = cmdline_uint("report_every", 1);
    if (report_every == 0) {
        report_every = 1;
    }
    if (end <= start) {
        guest_printf("FAIL: no memory to dirty (start 0x%x end 0x%x)\n", start, end);
        return 2;
    }
    uint32_t pages = (end - start) / PAGE;
    /* Interrupts are enabled only for the idle timer: the IDT catches anything else. */
    interrupts_init();
    uint64_t idle_cycles = (uint64_t)cmdline_uint("idle_mcycles", 0) * 1000000u;
    if (idle_cycles != 0) {
        interrupt_set_handler(TIMER_VECTOR, on_timer);
        interrupt_set_handler(SPURIOUS_VECTOR, on_spurious);
        pic_mask_all();
        apic_write(APIC_SVR, 0x100 | SPURIOUS_VECTOR);
        apic_write(APIC_TPR, 0);
        tsc_deadline = (cpuid(1, 0).ecx & (1u << 24)) != 0;
        apic_write(APIC_TIMER_DIVIDE, 0xB); /* divide by 1 */
        apic_write(APIC_LVT_TIMER, (tsc_deadline ? LVT_TSC_DEADLINE : 0) | TIMER_VECTOR);
        __asm__ volatile("sti");
    }
    guest_printf("dirty: range 0x%x-0x%x, %u pages, passes %u (0 = forever)\n", start, end, pages,
                 passes);
    for (uint32_t p = start; p < end; p += PAGE) {
        *(volatile uint8_t*)p = 0;
    }
    for (uint32_t pass = 1; passes == 0 || pass <= passes; ++pass) {
        uint8_t expected = (uint8_t)(pass - 1);
        for (uint32_t p = start; p < end; p += PAGE) {
            volatile uint8_t* byte = (volatile uint8_t*)p;
            if (*byte != expected) {
                guest_printf("FAIL: dirty: page 0x%x holds %u, expected %u in pass %u\n", p, *byte,
                             expected, pass);
                return 3;
            }
            *byte = (uint8_t)(expected + 1);
        }
        if (pass == 1 || pass % report_every == 0) {
            guest_printf("dirty: pass %u done, %u pages\n", pass, pages);
        }
        if (idle_cycles != 0) {
            idle_for(idle_cycles);
        }
    }
    guest_printf("dirty: PASS\n");
    return 0;
}
