// The vCPU and interrupt-controller state beyond the architectural registers, for save/
// restore and migration (GODWIT_HC_VCPU_GET/SET_EXTRA, GODWIT_HC_IRQCHIP_GET/SET). Every
// set validates the whole input (the LAPIC/IOAPIC blobs through their restore) before it
// changes anything.
#include "arch/x86/intrinsics.hpp"
#include "arch/x86/vmx/vmcs_fields.hpp"
#include "partition/partition.hpp"
#include "partition/partitions.hpp"

namespace godwit::hv::partitions {
namespace {

using vmx::VmcsField;

static_assert(sizeof(VirtualLapic::State) <= GODWIT_STATE_BLOB_BYTES);
static_assert(sizeof(VirtualIoapic::State) <= GODWIT_STATE_BLOB_BYTES);

template <typename T>
void copy_bytes(T& destination, const u8* source) {
    u8* out = reinterpret_cast<u8*>(&destination);
    for (usize i = 0; i < sizeof(T); ++i)
        out[i] = source[i];
}

template <typename T>
void copy_out(u8* destination, const T& source) {
    const u8* in = reinterpret_cast<const u8*>(&source);
    for (usize i = 0; i < sizeof(T); ++i)
        destination[i] = in[i];
}

} // namespace

u64 get_extra(u32 id, u32 index, godwit_hc_vcpu_extra& out) {
    ClaimedVcpu call(id, index, true);
    if (call.status() != GODWIT_HC_OK)
        return call.status();
    Vcpu& v = call.vcpu();
    Partition* p = &call.partition();
    VmxVcpu& g = v.vmx;
    out = godwit_hc_vcpu_extra{};
    out.format = GODWIT_VCPU_EXTRA_FORMAT;
    out.mp_state = v.waiting_for_sipi ? GODWIT_MP_WAIT_FOR_SIPI
                   : v.halted         ? GODWIT_MP_HALTED
                                      : GODWIT_MP_RUNNABLE;
    out.pending_event = static_cast<u32>(g.read(VmcsField::entry_interruption_info));
    out.pending_error_code = static_cast<u32>(g.read(VmcsField::entry_exception_error_code));
    out.pending_instruction_length = static_cast<u32>(g.read(VmcsField::entry_instruction_length));
    out.interruptibility = static_cast<u32>(g.read(VmcsField::guest_interruptibility));
    out.pat = g.read(VmcsField::guest_pat);
    out.misc_enable = g.misc_enable;
    out.dr7 = g.read(VmcsField::guest_dr7);
    out.cr2 = g.cr2;
    out.sysenter_cs = g.read(VmcsField::guest_sysenter_cs);
    out.sysenter_esp = g.read(VmcsField::guest_sysenter_esp);
    out.sysenter_eip = g.read(VmcsField::guest_sysenter_eip);
    {
        SpinLockGuard guard(p->irq_lock);
        out.guest_tsc = guest_tsc(v);
        VirtualLapic::State lapic{};
        v.lapic.save(lapic, out.guest_tsc);
        copy_out(out.lapic, lapic);
        out.lapic_bytes = sizeof(lapic);
    }
    return GODWIT_HC_OK;
}

u64 set_extra(u32 id, u32 index, const godwit_hc_vcpu_extra& in) {
    if (in.lapic_bytes != sizeof(VirtualLapic::State) || (in.pending_event & 0x7FFFF000u) != 0 ||
        in.interruptibility > 0xF || in.pending_instruction_length > 15)
        return GODWIT_HC_BAD_ARGUMENT;
    constexpr u64 pat_reserved = 0xF8F8F8F8F8F8F8F8ull; // each entry is a 3-bit type
    if ((in.pat & pat_reserved) != 0)
        return GODWIT_HC_BAD_ARGUMENT;
    ClaimedVcpu call(id, index, true); // the registers come first (VCPU_SET_STATE)
    if (call.status() != GODWIT_HC_OK)
        return call.status();
    Vcpu& v = call.vcpu();
    Partition* p = &call.partition();
    // The guest's TSC continues from where it was saved.
    u64 offset = in.guest_tsc - x86::rdtsc();
    VirtualLapic::State lapic{};
    copy_bytes(lapic, in.lapic);
    bool restored = false;
    {
        SpinLockGuard guard(p->irq_lock);
        restored = v.lapic.restore(lapic, x86::rdtsc() + offset);
    }
    if (!restored)
        return GODWIT_HC_BAD_ARGUMENT;
    VmxVcpu& g = v.vmx;
    v.tsc_offset = offset;
    g.write(VmcsField::tsc_offset, offset);
    v.waiting_for_sipi = in.mp_state == GODWIT_MP_WAIT_FOR_SIPI;
    v.halted = in.mp_state == GODWIT_MP_HALTED;
    g.write(VmcsField::entry_interruption_info, in.pending_event);
    g.write(VmcsField::entry_exception_error_code, in.pending_error_code);
    g.write(VmcsField::entry_instruction_length, in.pending_instruction_length);
    g.write(VmcsField::guest_interruptibility, in.interruptibility);
    g.write(VmcsField::guest_pat, in.pat);
    g.misc_enable = in.misc_enable | VmxVcpu::misc_enable_default;
    g.write(VmcsField::guest_dr7, (in.dr7 & 0xFFFFFFFFull) | 0x400);
    g.cr2 = in.cr2;
    g.write(VmcsField::guest_sysenter_cs, in.sysenter_cs & 0xFFFFFFFFull);
    g.write(VmcsField::guest_sysenter_esp, in.sysenter_esp);
    g.write(VmcsField::guest_sysenter_eip, in.sysenter_eip);
    return GODWIT_HC_OK;
}

u64 irqchip_get(u32 id, godwit_hc_irqchip& out) {
    Partition* p = find(id);
    if (p == nullptr)
        return GODWIT_HC_BAD_ARGUMENT;
    SpinLockGuard guard(p->irq_lock);
    out = godwit_hc_irqchip{};
    out.format = GODWIT_IRQCHIP_FORMAT;
    VirtualIoapic::State state{};
    p->ioapic.save(state);
    copy_out(out.ioapic, state);
    out.ioapic_bytes = sizeof(state);
    return GODWIT_HC_OK;
}

u64 irqchip_set(u32 id, const godwit_hc_irqchip& in) {
    if (in.ioapic_bytes != sizeof(VirtualIoapic::State))
        return GODWIT_HC_BAD_ARGUMENT;
    Partition* p = find(id);
    if (p == nullptr)
        return GODWIT_HC_BAD_ARGUMENT;
    VirtualIoapic::State state{};
    copy_bytes(state, in.ioapic);
    SpinLockGuard guard(p->irq_lock);
    return p->ioapic.restore(state) ? GODWIT_HC_OK : GODWIT_HC_BAD_ARGUMENT;
}

} // namespace godwit::hv::partitions
