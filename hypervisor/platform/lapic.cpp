#include "platform/lapic.hpp"

#include "arch/x86/apic_vectors.hpp"
#include "arch/x86/intrinsics.hpp"
#include "platform/pit.hpp"

namespace godwit::hv {
namespace {

constexpr u32 msr_apic_base = 0x1B;
constexpr u64 apic_base_enable = 1ull << 11;
constexpr u64 apic_base_x2apic = 1ull << 10;
constexpr u32 msr_x2apic_id = 0x802;
constexpr u32 msr_x2apic_icr = 0x830;
constexpr u32 msr_x2apic_svr = 0x80F;
constexpr u32 xapic_id = 0x20, xapic_svr = 0xF0, xapic_icr_low = 0x300, xapic_icr_high = 0x310;
constexpr u32 xapic_ppr = 0xA0, xapic_irr = 0x200; // IRR: eight registers 0x10 apart
constexpr u32 msr_x2apic_ppr = 0x80A, msr_x2apic_irr = 0x820;
constexpr u32 icr_init = 0x00004500;    // delivery mode INIT, level assert
constexpr u32 icr_startup = 0x00004600; // delivery mode STARTUP
constexpr u32 icr_pending = 1u << 12;

volatile u32& xapic_reg(u32 offset) {
    u64 base = x86::rdmsr(msr_apic_base) & 0xFFFFFF000ull;
    return *reinterpret_cast<volatile u32*>(base + offset);
}

bool x2apic_mode() {
    return (x86::rdmsr(msr_apic_base) & apic_base_x2apic) != 0;
}

} // namespace

void lapic_send_ipi(u32 apic_id, u32 command) {
    // The mode is read each time: the root partition owns the APIC and may switch it to
    // x2APIC (Linux does with interrupt remapping).
    if (x2apic_mode()) {
        x86::wrmsr(msr_x2apic_icr, (static_cast<u64>(apic_id) << 32) | command);
        return;
    }
    // ICR high is the root's too (it writes it, then ICR low): put its value back.
    u32 high = xapic_reg(xapic_icr_high);
    xapic_reg(xapic_icr_high) = apic_id << 24;
    xapic_reg(xapic_icr_low) = command;
    for (int i = 0; i < 1000000 && (xapic_reg(xapic_icr_low) & icr_pending); ++i)
        x86::pause();
    xapic_reg(xapic_icr_high) = high;
}

bool lapic_enable_this_cpu() {
    // The mode the firmware chose (x2APIC when it enabled it, as it must for APIC IDs above
    // 255). Never switch: the root partition inherits the APIC, Linux cannot leave x2APIC
    // without interrupt remapping, and leaving it means a hardware disable, which some CPUs
    // (and Bochs) only undo at reset.
    u64 base = x86::rdmsr(msr_apic_base) | apic_base_enable;
    bool x2apic = (base & apic_base_x2apic) != 0;
    x86::wrmsr(msr_apic_base, base);
    // Spurious-interrupt vector register: software enable (bit 8), vector 0xFF.
    if (x2apic) {
        x86::wrmsr(msr_x2apic_svr, 0x1FF);
    } else {
        xapic_reg(xapic_svr) = 0x1FF;
    }
    return x2apic;
}

u32 lapic_id() {
    if (x2apic_mode())
        return static_cast<u32>(x86::rdmsr(msr_x2apic_id));
    return xapic_reg(xapic_id) >> 24;
}

bool lapic_interrupt_pending() {
    u32 irr[8];
    u32 ppr;
    if (x2apic_mode()) {
        for (u32 i = 0; i < 8; ++i)
            irr[i] = static_cast<u32>(x86::rdmsr(msr_x2apic_irr + i));
        ppr = static_cast<u32>(x86::rdmsr(msr_x2apic_ppr));
    } else {
        for (u32 i = 0; i < 8; ++i)
            irr[i] = xapic_reg(xapic_irr + 0x10 * i);
        ppr = xapic_reg(xapic_ppr);
    }
    return x86::deliverable(x86::highest_vector(irr), ppr);
}

bool lapic_start_ap(u32 apic_id, u8 vector) {
    lapic_send_ipi(apic_id, icr_init);
    pit_delay_us(10000);
    lapic_send_ipi(apic_id, icr_startup | vector);
    pit_delay_us(200);
    lapic_send_ipi(apic_id, icr_startup | vector);
    pit_delay_us(200);
    return true;
}

} // namespace godwit::hv
