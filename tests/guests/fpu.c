/* fpu: the guest's x87, SSE and AVX registers are its own. A fresh vCPU starts in the reset
   state (FCW 0x37F, MXCSR 0x1F80, XMM zero, XCR0 1: nothing of the root's shows through);
   known values in the x87 stack, FCW, MXCSR, XMM0-7 (and the upper YMM halves once XCR0
   enables AVX) survive hundreds of port-I/O exits, each a return to the root partition and
   its VMM; XSETBV takes valid XCR0 values and raises #GP for invalid ones (Intel SDM Vol. 1
   chapter 13, Vol. 2B XSETBV). Under QEMU TCG and Godwit alike. */
#include "guest.h"

#define COM1_SCRATCH 0x3ff
#define CR0_MP (1u << 1)
#define CR0_EM (1u << 2)
#define CR0_TS (1u << 3)
#define CR4_OSFXSR (1u << 9)
#define CR4_OSXMMEXCPT (1u << 10)
#define CR4_OSXSAVE (1u << 18)

static unsigned checks, failures;

static void check(bool ok, const char* name, uint32_t got, uint32_t want) {
    ++checks;
    if (ok) {
        guest_printf("PASS %s\n", name);
        return;
    }
    ++failures;
    guest_printf("FAIL %s: got 0x%x, want 0x%x\n", name, got, want);
}

static volatile uint32_t general_protection_faults;
static void on_general_protection(struct interrupt_frame* frame) {
    ++general_protection_faults;
    frame->eip += 3; /* skip the faulting xsetbv (0f 01 d1) */
}

static inline uint32_t read_cr0(void) {
    uint32_t v;
    __asm__ volatile("mov %%cr0, %0" : "=r"(v));
    return v;
}
static inline void write_cr0(uint32_t v) {
    __asm__ volatile("mov %0, %%cr0" ::"r"(v) : "memory");
}
static inline uint32_t read_cr4(void) {
    uint32_t v;
    __asm__ volatile("mov %%cr4, %0" : "=r"(v));
    return v;
}
static inline void write_cr4(uint32_t v) {
    __asm__ volatile("mov %0, %%cr4" ::"r"(v) : "memory");
}
static inline uint64_t xgetbv(uint32_t index) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(index));
    return ((uint64_t)hi << 32) | lo;
}
static inline void xsetbv(uint32_t index, uint64_t value) {
    __asm__ volatile("xsetbv" ::"c"(index), "a"((uint32_t)value), "d"((uint32_t)(value >> 32))
                     : "memory");
}

static uint8_t xmm_pattern[8][16] __attribute__((aligned(16)));
static uint8_t xmm_seen[8][16] __attribute__((aligned(16)));
static uint8_t ymm_pattern[2][32] __attribute__((aligned(32)));
static uint8_t ymm_seen[2][32] __attribute__((aligned(32)));

static void load_xmm(const uint8_t (*p)[16]) {
    __asm__ volatile("movdqu 0(%0), %%xmm0\n\tmovdqu 16(%0), %%xmm1\n\t"
                     "movdqu 32(%0), %%xmm2\n\tmovdqu 48(%0), %%xmm3\n\t"
                     "movdqu 64(%0), %%xmm4\n\tmovdqu 80(%0), %%xmm5\n\t"
                     "movdqu 96(%0), %%xmm6\n\tmovdqu 112(%0), %%xmm7" ::"r"(p)
                     : "memory");
}
static void store_xmm(uint8_t (*p)[16]) {
    __asm__ volatile("movdqu %%xmm0, 0(%0)\n\tmovdqu %%xmm1, 16(%0)\n\t"
                     "movdqu %%xmm2, 32(%0)\n\tmovdqu %%xmm3, 48(%0)\n\t"
                     "movdqu %%xmm4, 64(%0)\n\tmovdqu %%xmm5, 80(%0)\n\t"
                     "movdqu %%xmm6, 96(%0)\n\tmovdqu %%xmm7, 112(%0)" ::"r"(p)
                     : "memory");
}
/* Only YMM0/YMM1: the XMM checks keep the lower halves of the others. */
static void load_ymm(void) {
    __asm__ volatile("vmovdqu 0(%0), %%ymm0\n\tvmovdqu 32(%0), %%ymm1" ::"r"(ymm_pattern)
                     : "memory");
}
static void store_ymm(void) {
    __asm__ volatile("vmovdqu %%ymm0, 0(%0)\n\tvmovdqu %%ymm1, 32(%0)" ::"r"(ymm_seen) : "memory");
}

static uint32_t first_difference(const uint8_t* a, const uint8_t* b, uint32_t bytes) {
    for (uint32_t i = 0; i < bytes; ++i)
        if (a[i] != b[i])
            return i + 1;
    return 0;
}

static uint16_t fnstcw(void) {
    uint16_t v;
    __asm__ volatile("fnstcw %0" : "=m"(v));
    return v;
}
static uint32_t stmxcsr(void) {
    uint32_t v;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v;
}

/* Port-I/O exits, each handled by the VMM in the root: OUT then IN of the UART's scratch
   register (the IN completes on the next run). */
static bool exits_to_the_root(unsigned rounds) {
    for (unsigned i = 0; i < rounds; ++i) {
        outb(COM1_SCRATCH, (uint8_t)i);
        if (inb(COM1_SCRATCH) != (uint8_t)i)
            return false;
    }
    return true;
}

int guest_main(void) {
    interrupts_init();
    interrupt_set_handler(13, on_general_protection);

    /* The reset state, before this guest touches anything (x87 needs no CR4 bits). */
    check(fnstcw() == 0x37f, "fpu.reset.fcw", fnstcw(), 0x37f);
    write_cr0((read_cr0() & ~(CR0_EM | CR0_TS)) | CR0_MP);
    write_cr4(read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT);
    check(stmxcsr() == 0x1f80, "fpu.reset.mxcsr", stmxcsr(), 0x1f80);
    store_xmm(xmm_seen);
    static const uint8_t zero[8][16];
    uint32_t d = first_difference(&xmm_seen[0][0], &zero[0][0], sizeof zero);
    check(d == 0, "fpu.reset.xmm_zero (nothing of the root's)", d, 0);

    /* Known values everywhere the guest can put them. */
    for (unsigned r = 0; r < 8; ++r)
        for (unsigned b = 0; b < 16; ++b)
            xmm_pattern[r][b] = (uint8_t)(0x11 * (r + 1) + 7 * b);
    load_xmm(xmm_pattern);
    uint32_t mxcsr = 0x5f80; /* round up, all exceptions masked */
    __asm__ volatile("ldmxcsr %0" ::"m"(mxcsr));
    uint16_t fcw = 0x27f; /* 53-bit precision */
    __asm__ volatile("fldcw %0" ::"m"(fcw));
    /* 1234.5 and -0.0078125 as IEEE doubles (the guest's C code stays integer-only). */
    static const uint64_t a = 0x40934a0000000000ull, b = 0xbf80000000000000ull;
    __asm__ volatile("fldl %0\n\tfldl %1" ::"m"(a), "m"(b));

    bool io_ok = exits_to_the_root(400);
    check(io_ok, "fpu.io.scratch_round_trips", io_ok, 1);

    store_xmm(xmm_seen);
    d = first_difference(&xmm_seen[0][0], &xmm_pattern[0][0], sizeof xmm_pattern);
    check(d == 0, "fpu.sse.xmm0_7_survive_exits", d, 0);
    check(stmxcsr() == mxcsr, "fpu.sse.mxcsr_survives_exits", stmxcsr(), mxcsr);
    check(fnstcw() == fcw, "fpu.x87.fcw_survives_exits", fnstcw(), fcw);
    uint64_t b_seen = 0, a_seen = 0;
    __asm__ volatile("fstpl %0\n\tfstpl %1" : "=m"(b_seen), "=m"(a_seen));
    check(a_seen == a && b_seen == b, "fpu.x87.stack_survives_exits", (uint32_t)(a_seen >> 32),
          (uint32_t)(a >> 32));

    struct cpuid_result leaf1 = cpuid(1, 0);
    bool xsave = (leaf1.ecx >> 26) & 1, avx = (leaf1.ecx >> 28) & 1;
    if (!xsave) {
        guest_printf("fpu: no XSAVE on this CPU, XCR0 checks skipped\n");
    } else {
        write_cr4(read_cr4() | CR4_OSXSAVE);
        check((cpuid(1, 0).ecx >> 27) & 1, "fpu.cpuid.osxsave_follows_cr4", 0, 1);
        check(xgetbv(0) == 1, "fpu.reset.xcr0", (uint32_t)xgetbv(0), 1);
        struct cpuid_result d0 = cpuid(0xd, 0);
        check((d0.eax & 3) == 3, "fpu.cpuid.0xd_x87_sse", d0.eax, 3);
        /* Godwit offers guests x87, SSE, AVX, AVX-512 and PKRU only (not MPX or AMX). */
        struct cpuid_result hv = cpuid(0x40000000, 0);
        if ((leaf1.ecx >> 31) && hv.ebx == 0x77646f47 && hv.ecx == 0x6f477469)
            check((d0.eax & ~0x2e7u) == 0 && d0.edx == 0, "fpu.cpuid.0xd_godwit_policy", d0.eax,
                  d0.eax & 0x2e7u);
        general_protection_faults = 0;
        xsetbv(0, 0); /* x87 cleared */
        xsetbv(0, 5); /* AVX without SSE */
        xsetbv(1, 1); /* no XCR1 */
        xsetbv(0, 1ull << 62);
        check(general_protection_faults == 4 && xgetbv(0) == 1, "fpu.xsetbv.invalid_values_gp",
              general_protection_faults, 4);
        xsetbv(0, 3);
        check(xgetbv(0) == 3 && general_protection_faults == 4, "fpu.xsetbv.x87_sse",
              (uint32_t)xgetbv(0), 3);
        if (avx && (d0.eax & 4)) {
            xsetbv(0, 7);
            check(xgetbv(0) == 7, "fpu.xsetbv.avx", (uint32_t)xgetbv(0), 7);
            for (unsigned r = 0; r < 2; ++r)
                for (unsigned i = 0; i < 32; ++i)
                    ymm_pattern[r][i] = (uint8_t)(0xa5 ^ (r * 32 + i));
            load_ymm();
            io_ok = exits_to_the_root(200);
            store_ymm();
            d = first_difference(&ymm_seen[0][0], &ymm_pattern[0][0], sizeof ymm_pattern);
            check(io_ok && d == 0, "fpu.avx.ymm0_1_survive_exits", d, 0);
            check(xgetbv(0) == 7, "fpu.xsetbv.xcr0_survives_exits", (uint32_t)xgetbv(0), 7);
            check(d0.ecx >= 832, "fpu.cpuid.0xd_size_covers_avx", d0.ecx, 832);
        } else {
            guest_printf("fpu: no AVX on this CPU, YMM checks skipped\n");
        }
    }
    guest_printf("fpu: %u checks, %u failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
