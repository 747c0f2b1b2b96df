#include "kernel/descriptors.hpp"

#include "arch/x86/intrinsics.hpp"

extern "C" godwit::hv::u64 exception_stub_table[32];

namespace godwit::hv {
namespace {

// Interrupt gate (Intel SDM Vol. 3A, 7.14.1 "64-Bit Mode IDT").
struct [[gnu::packed]] IdtGate {
    u16 offset_low;
    u16 selector;
    u8 ist;
    u8 type_attributes;
    u16 offset_mid;
    u32 offset_high;
    u32 reserved;
};
static_assert(sizeof(IdtGate) == 16);

alignas(16) IdtGate idt[256];
bool idt_built = false;

constexpr u8 gate_present_interrupt = 0x8E;
// Vectors whose handlers switch to the IST1 stack: NMI, #DF, #MC (the current stack may be
// what failed).
constexpr bool uses_ist(u32 vector) {
    return vector == 2 || vector == 8 || vector == 18;
}

void build_idt() {
    for (u32 v = 0; v < 32; ++v) {
        u64 handler = exception_stub_table[v];
        idt[v] = IdtGate{static_cast<u16>(handler),
                         selector_code,
                         static_cast<u8>(uses_ist(v) ? 1 : 0),
                         gate_present_interrupt,
                         static_cast<u16>(handler >> 16),
                         static_cast<u32>(handler >> 32),
                         0};
    }
    idt_built = true;
}

} // namespace

void descriptors_init_this_cpu(CpuDescriptors& d) {
    if (!idt_built)
        build_idt(); // the BSP builds it before any AP starts
    d.gdt[0] = 0;
    d.gdt[1] = 0x00AF9A000000FFFFull; // 64-bit code, DPL 0
    d.gdt[2] = 0x00CF92000000FFFFull; // data, DPL 0
    u64 base = reinterpret_cast<u64>(&d.tss);
    u64 limit = sizeof(Tss64) - 1;
    // 64-bit available TSS descriptor (type 9), 16 bytes (Intel SDM Vol. 3A, 8.2.3).
    d.gdt[3] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ull << 40) |
               (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56);
    d.gdt[4] = base >> 32;
    d.tss = Tss64{};
    d.tss.ist[0] = reinterpret_cast<u64>(d.fault_stack + sizeof d.fault_stack);
    d.tss.iomap_base = sizeof(Tss64); // no I/O permission bitmap
    x86::lgdt(x86::DescriptorTablePointer{sizeof d.gdt - 1, reinterpret_cast<u64>(d.gdt)});
    x86::reload_segments(selector_code, selector_data);
    x86::ltr(selector_tss);
    x86::lidt(x86::DescriptorTablePointer{sizeof idt - 1, reinterpret_cast<u64>(idt)});
}

} // namespace godwit::hv
