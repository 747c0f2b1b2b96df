// Guest accesses outside RAM and to the APIC MSRs. An EPT violation outside the guest's RAM
// carries the address but not the data: the faulting instruction is fetched (through the
// guest's page tables) and decoded, then the access goes to the virtual LAPIC, the virtual
// IOAPIC, or — for anything else — to the VMM as a GODWIT_EXIT_MMIO record.
#include "arch/x86/guest_paging.hpp"
#include "arch/x86/mmio_instruction.hpp"
#include "arch/x86/vmx/vmcs_fields.hpp"
#include "arch/x86/vmx/vmx_instruction.hpp"
#include "kernel/console.hpp"
#include "memory/frame_allocator.hpp"
#include "partition/partition.hpp"

namespace godwit::hv::partitions {
namespace {

// Reads guest-physical memory through the partition's EPT (RAM only).
bool read_guest_physical(void* context, u64 gpa, void* destination, u32 length) {
    Partition& p = *static_cast<Partition*>(context);
    u8* out = static_cast<u8*>(destination);
    while (length > 0) {
        u64 hpa = 0;
        u8 access = 0;
        ept::PageSize size{};
        if (!p.ept.translate(gpa & ~(page_size - 1), hpa, access, size))
            return false;
        u64 offset = gpa & (page_size - 1);
        u32 piece = static_cast<u32>(page_size - offset) < length
                        ? static_cast<u32>(page_size - offset)
                        : length;
        const u8* source = static_cast<const u8*>(phys_to_virt(PhysAddr{hpa + offset}));
        for (u32 i = 0; i < piece; ++i)
            out[i] = source[i];
        out += piece;
        gpa += piece;
        length -= piece;
    }
    return true;
}

// Fetches and decodes the instruction at CS:RIP. False when it cannot (logged, rate-limited).
bool decode_current(Partition& p, Vcpu& v, x86::MmioInstruction& instruction) {
    x86::GuestPhysicalReader reader{read_guest_physical, &p};
    CurrentInstruction c = decode_current_instruction(v.vmx, reader);
    if (c.status == x86::DecodeStatus::ok) {
        instruction = c.decoded;
        return true;
    }
    log(LogLevel::warn,
        "partition %u: MMIO instruction at 0x%lx not emulated (%s; bytes %02x %02x %02x %02x)",
        p.id, c.linear, decode_failure(c), c.bytes[0], c.bytes[1], c.bytes[2], c.bytes[3]);
    return false;
}

void finish_load(Vcpu& v, const x86::MmioInstruction& instruction, u64 value) {
    u64 gprs[16];
    read_gprs(v.vmx, gprs);
    x86::complete_load(instruction, value, gprs);
    write_gprs(v.vmx, gprs);
}

u64 store_value(Vcpu& v, const x86::MmioInstruction& instruction) {
    u64 gprs[16];
    read_gprs(v.vmx, gprs);
    return x86::store_value(instruction, gprs);
}

} // namespace

void complete_mmio_load(Vcpu& v, u64 value) {
    finish_load(v, v.mmio, value);
    v.vmx.skip_instruction(v.mmio.length);
}

Emulated emulate_ept_violation(Partition& p, Vcpu& v, u64 gpa, u64 qualification,
                               godwit_hc_vcpu_run& run, u32& wake) {
    x86::MmioInstruction instruction{};
    if (!decode_current(p, v, instruction))
        return Emulated::failed;
    bool load = instruction.op == x86::MmioOp::load;
    // The instruction must be the access that faulted (bit 1 = write): another vCPU may
    // have rewritten it since. Then nothing is emulated: the VMM stops the VM.
    if (load == (((qualification >> 1) & 1) != 0))
        return Emulated::failed;
    u64 value = load ? 0 : store_value(v, instruction);
    u64 page = gpa & ~(page_size - 1);
    u32 offset = static_cast<u32>(gpa & (page_size - 1));
    {
        SpinLockGuard guard(p.irq_lock);
        // APIC registers are 32-bit at 16-byte strides: narrower or unaligned accesses see
        // the containing register (reads) or are dropped (writes), as KVM does.
        if (v.lapic.xapic_enabled() && !v.lapic.x2apic_enabled() &&
            page == v.lapic.base_address()) {
            if (load)
                finish_load(v, instruction, v.lapic.mmio_read(offset & ~3u, guest_tsc(v)));
            else if (instruction.access_size >= 4 && (offset & 3) == 0)
                lapic_mmio_write(p, v, offset, static_cast<u32>(value), wake);
            v.vmx.skip_instruction(instruction.length);
            return Emulated::done;
        }
        if (page == ioapic_base) {
            if (load)
                finish_load(v, instruction, p.ioapic.mmio_read(offset & ~3u));
            else
                ioapic_write(p, offset & ~3u, static_cast<u32>(value), wake);
            v.vmx.skip_instruction(instruction.length);
            return Emulated::done;
        }
    }
    run.exit_reason = GODWIT_EXIT_MMIO;
    run.gpa = gpa;
    run.size = instruction.access_size;
    run.direction = load ? 1 : 0;
    if (load) {
        v.mmio = instruction;
        return Emulated::to_vmm_read;
    }
    run.value = value;
    v.vmx.skip_instruction(instruction.length);
    return Emulated::to_vmm;
}

Emulated emulate_apic_msr(Partition& p, Vcpu& v, bool write, u32 instruction_length, u32& wake) {
    GuestRegisters& r = v.vmx.regs;
    u32 msr = static_cast<u32>(r.rcx);
    constexpr u32 apic_base_msr = 0x1B, tsc_deadline_msr = 0x6E0;
    if (msr != apic_base_msr && msr != tsc_deadline_msr && (msr < 0x800 || msr > 0x8FF))
        return Emulated::not_mine;
    bool ok = false;
    {
        SpinLockGuard guard(p.irq_lock);
        if (write) {
            ok = lapic_msr_write(p, v, msr, (r.rdx << 32) | (r.rax & 0xFFFFFFFFu), wake);
        } else {
            u64 value = 0;
            ok = v.lapic.msr_read(msr, value, guest_tsc(v));
            if (ok) {
                r.rax = value & 0xFFFFFFFFu;
                r.rdx = value >> 32;
            }
        }
    }
    if (!ok)
        v.vmx.inject_gp(); // RIP stays on the instruction, as for a real #GP
    else
        v.vmx.skip_instruction(instruction_length);
    return Emulated::done;
}

} // namespace godwit::hv::partitions
