// Guest accesses outside RAM and to the APIC MSRs. An EPT violation outside the guest's RAM
// carries the address but not the data: the faulting instruction is fetched (through the
// guest's page tables) and decoded, then the access goes to the virtual LAPIC, the virtual
// IOAPIC, or — for anything else — to the VMM as a GODWIT_EXIT_MMIO record.
#include "arch/x86/guest_paging.hpp"
#include "arch/x86/mmio_instruction.hpp"
#include "arch/x86/vmx/vmcs_fields.hpp"
#include "kernel/console.hpp"
#include "memory/frame_allocator.hpp"
#include "partition/partition.hpp"

namespace godwit::hv::partitions {
namespace {

using vmx::VmcsField;

// The guest's GPRs in instruction-encoding order (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI,
// R8-R15); RSP lives in the VMCS.
void read_gprs(VmxVcpu& g, u64 (&gprs)[16]) {
    const GuestRegisters& r = g.regs;
    u64 values[16] = {r.rax, r.rcx, r.rdx, r.rbx, g.read(VmcsField::guest_rsp),
                      r.rbp, r.rsi, r.rdi, r.r8,  r.r9,
                      r.r10, r.r11, r.r12, r.r13, r.r14,
                      r.r15};
    for (int i = 0; i < 16; ++i)
        gprs[i] = values[i];
}

void write_gprs(VmxVcpu& g, const u64 (&gprs)[16]) {
    GuestRegisters& r = g.regs;
    u64* slots[16] = {&r.rax, &r.rcx, &r.rdx, &r.rbx, nullptr, &r.rbp, &r.rsi, &r.rdi,
                      &r.r8,  &r.r9,  &r.r10, &r.r11, &r.r12,  &r.r13, &r.r14, &r.r15};
    for (int i = 0; i < 16; ++i) {
        if (slots[i] != nullptr)
            *slots[i] = gprs[i];
    }
    g.write(VmcsField::guest_rsp, gprs[4]);
}

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
    VmxVcpu& g = v.vmx;
    // The walk the CPU did: the real CR0/CR4 (the bits the hypervisor owns, NE and VMXE, do
    // not affect paging) and, under PAE, the PDPTEs VM entry loaded (Vol. 3C 26.3.2.4).
    u64 pdptes[4] = {g.read(VmcsField::guest_pdpte0), g.read(VmcsField::guest_pdpte1),
                     g.read(VmcsField::guest_pdpte2), g.read(VmcsField::guest_pdpte3)};
    x86::PagingContext paging{g.read(VmcsField::guest_cr0), g.read(VmcsField::guest_cr3),
                              g.read(VmcsField::guest_cr4), g.read(VmcsField::guest_efer)};
    if (x86::paging_mode(paging) == x86::PagingMode::pae)
        paging.pae_pdptes = pdptes;
    u64 cs_access = g.read(VmcsField::guest_cs_access_rights);
    x86::CpuMode mode =
        x86::cpu_mode_of(paging.cr0, paging.efer, g.read(VmcsField::guest_rflags),
                         (cs_access & (1u << 13)) != 0, (cs_access & (1u << 14)) != 0);
    u64 linear = g.read(VmcsField::guest_cs_base) + g.read(VmcsField::guest_rip);
    if (mode != x86::CpuMode::long64)
        linear &= 0xFFFFFFFFu;
    x86::GuestPhysicalReader reader{read_guest_physical, &p};
    u8 bytes[15] = {};
    u32 count = x86::fetch_instruction(paging, linear, bytes, reader);
    x86::DecodeStatus s = count == 0
                              ? x86::DecodeStatus::truncated
                              : x86::decode_mmio_instruction(bytes, count, mode, instruction);
    if (s == x86::DecodeStatus::ok)
        return true;
    log(LogLevel::warn,
        "partition %u: MMIO instruction at 0x%lx not emulated (%s; bytes %02x %02x %02x %02x)",
        p.id, linear,
        count == 0                            ? "not fetchable"
        : s == x86::DecodeStatus::unsupported ? "unsupported"
        : s == x86::DecodeStatus::truncated   ? "truncated"
                                              : "invalid",
        bytes[0], bytes[1], bytes[2], bytes[3]);
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
