// Per-CPU GDT (code, data, TSS), TSS with IST stacks for faults that must not use a broken
// stack, and the shared IDT whose exception handlers print a register dump.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

inline constexpr u16 selector_code = 0x08;
inline constexpr u16 selector_data = 0x10;
inline constexpr u16 selector_tss = 0x18;

// Long-mode TSS (Intel SDM Vol. 3A, 8.7 "Task Management in 64-bit Mode").
struct [[gnu::packed]] Tss64 {
    u32 reserved0;
    u64 rsp[3];
    u64 reserved1;
    u64 ist[7];
    u64 reserved2;
    u16 reserved3;
    u16 iomap_base;
};
static_assert(sizeof(Tss64) == 104);
static_assert(__builtin_offsetof(Tss64, ist) == 36);

struct alignas(16) CpuDescriptors {
    u64 gdt[5]; // null, code64, data, TSS (two slots)
    Tss64 tss;
    alignas(16) u8 fault_stack[8192];
};

// Loads this CPU's GDT/TSS and the shared IDT (building the IDT on first use).
void descriptors_init_this_cpu(CpuDescriptors& d);

} // namespace godwit::hv
