/* Runtime of Godwit's test guests: Multiboot1 kernels that talk to the VM through COM1
   (0x3f8), the debug-exit port (0xf4) and fw_cfg (0x510/0x511), like kvm-unit-tests x86. */
#ifndef GODWIT_GUEST_H
#define GODWIT_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- port I/O, MSRs, CPUID ---- */
static inline void outb(uint16_t port, uint8_t v) {
    __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v) {
    __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v) {
    __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port) {
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint16_t inw(uint16_t port) {
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint32_t inl(uint16_t port) {
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint64_t rdmsr(uint32_t msr) {
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v) {
    __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}
struct cpuid_result {
    uint32_t eax, ebx, ecx, edx;
};
static inline struct cpuid_result cpuid(uint32_t leaf, uint32_t subleaf) {
    struct cpuid_result r;
    __asm__ volatile("cpuid"
                     : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
                     : "a"(leaf), "c"(subleaf));
    return r;
}
static inline uint32_t mmio_read32(uint32_t addr) {
    return *(volatile uint32_t*)addr;
}
static inline void mmio_write32(uint32_t addr, uint32_t v) {
    *(volatile uint32_t*)addr = v;
}
static inline void cpu_relax(void) {
    __asm__ volatile("pause" ::: "memory");
}

/* ---- console (COM1) ---- */
void serial_init(void);
void serial_putc(char c);
void serial_write(const char* s);
/* printf subset: %s %c %d %u %x %llx %llu, with optional zero-padded width for %x. */
void guest_printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- exit through the debug-exit port: the VM result is (code << 1) | 1 ---- */
#define DEBUG_EXIT_PORT 0xf4
_Noreturn void guest_exit(uint32_t code);

/* ---- fw_cfg (QEMU docs/specs/fw_cfg.txt, traditional I/O interface) ---- */
#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_ID 0x01
#define FW_CFG_RAM_SIZE 0x03
#define FW_CFG_NB_CPUS 0x05
#define FW_CFG_FILE_DIR 0x19
bool fw_cfg_present(void);
void fw_cfg_read(uint16_t key, void* buf, uint32_t len);
uint32_t fw_cfg_cpu_count(void); /* 1 when fw_cfg is absent */
uint64_t fw_cfg_ram_size(void);  /* 0 when fw_cfg is absent */

/* ---- Multiboot1 info (spec section 3.3) ---- */
#define MB1_BOOTLOADER_MAGIC 0x2BADB002
struct mb1_info {
    uint32_t flags;
    uint32_t mem_lower, mem_upper;
    uint32_t boot_device;
    uint32_t cmdline;
    uint32_t mods_count, mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length, mmap_addr;
} __attribute__((packed));
struct mb1_mmap_entry {
    uint32_t size; /* of the rest of the entry */
    uint64_t addr, len;
    uint32_t type;
} __attribute__((packed));
extern const struct mb1_info* boot_info;
const char* boot_cmdline(void); /* "" when none */
/* Value of "key=<decimal>" in the command line, or def. */
uint32_t cmdline_uint(const char* key, uint32_t def);

/* ---- interrupts ---- */
struct interrupt_frame {
    uint32_t edi, esi, ebp, esp_dummy, ebx, edx, ecx, eax;
    uint32_t vector, error_code;
    uint32_t eip, cs, eflags;
};
typedef void (*interrupt_handler)(struct interrupt_frame*);
void interrupts_init(void); /* IDT with all 256 vectors; unhandled ones fail the test */
void interrupts_load(void); /* load the IDT on this CPU (APs) */
void interrupt_set_handler(uint8_t vector, interrupt_handler handler);
void pic_mask_all(void);

/* ---- xAPIC (SDM vol. 3 chapter 10), memory-mapped at its reset base ---- */
#define APIC_BASE 0xFEE00000u
#define APIC_ID 0x020
#define APIC_TPR 0x080
#define APIC_EOI 0x0B0
#define APIC_SVR 0x0F0
#define APIC_ICR_LOW 0x300
#define APIC_ICR_HIGH 0x310
#define APIC_LVT_TIMER 0x320
#define APIC_TIMER_INITIAL 0x380
#define APIC_TIMER_CURRENT 0x390
#define APIC_TIMER_DIVIDE 0x3E0
static inline uint32_t apic_read(uint32_t reg) {
    return mmio_read32(APIC_BASE + reg);
}
static inline void apic_write(uint32_t reg, uint32_t v) {
    mmio_write32(APIC_BASE + reg, v);
}

/* ---- spinlock ---- */
typedef struct {
    volatile uint32_t locked;
} spinlock;
void spin_lock(spinlock* l);
void spin_unlock(spinlock* l);

/* Provided by each guest. Return value is the exit code. */
int guest_main(void);
extern char __image_start[], __image_end[];

#endif
