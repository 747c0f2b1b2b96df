#include "arch/x86/vmx/vmx_exit_handlers.hpp"

#include "arch/x86/cpuid_policy.hpp"
#include "arch/x86/intrinsics.hpp"
#include "arch/x86/vmx/vmcs_fields.hpp"
#include "arch/x86/vmx/vmx_exit.hpp"
#include "kernel/console.hpp"

namespace godwit::hv {
namespace {

using vmx::ExitReason;
using vmx::VmcsField;

u64& gpr(GuestRegisters& r, u8 index) {
    // Exit qualifications number GPRs RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15.
    switch (index) {
    case 0:
        return r.rax;
    case 1:
        return r.rcx;
    case 2:
        return r.rdx;
    case 3:
        return r.rbx;
    case 5:
        return r.rbp;
    case 6:
        return r.rsi;
    case 7:
        return r.rdi;
    case 8:
        return r.r8;
    case 9:
        return r.r9;
    case 10:
        return r.r10;
    case 11:
        return r.r11;
    case 12:
        return r.r12;
    case 13:
        return r.r13;
    case 14:
        return r.r14;
    default:
        return r.r15; // 15; RSP (4) lives in the VMCS and is handled by the caller
    }
}

CpuidQuirks cpuid_quirks;

ExitOutcome handle_cpuid(VmxVcpu& v, const VmExit& e) {
    u32 leaf = static_cast<u32>(v.regs.rax), subleaf = static_cast<u32>(v.regs.rcx);
    CpuidValues host{};
    if (!is_hypervisor_leaf(leaf)) {
        x86::CpuidResult r = x86::cpuid(leaf, subleaf);
        host = {r.eax, r.ebx, r.ecx, r.edx};
    }
    CpuidValues g = guest_cpuid(leaf, subleaf, host, v.guest_visible_cr4(), cpuid_quirks);
    v.regs.rax = g.eax;
    v.regs.rbx = g.ebx;
    v.regs.rcx = g.ecx;
    v.regs.rdx = g.edx;
    v.skip_instruction(e.instruction_length);
    return {ExitAction::resume, nullptr};
}

// MSRs a guest may use; anything else gets #GP(0), as on a CPU without that MSR.
ExitOutcome handle_msr(VmxVcpu& v, const VmExit& e, bool write) {
    u32 msr = static_cast<u32>(v.regs.rcx);
    u64 value = (v.regs.rdx << 32) | (v.regs.rax & 0xFFFFFFFF);
    bool known = true;
    u64 result = 0;
    switch (msr) {
    case 0x10: // IA32_TIME_STAMP_COUNTER
        if (write)
            known = false;
        else
            result = x86::rdtsc() + v.read(VmcsField::tsc_offset);
        break;
    case 0x8B:      // IA32_BIOS_SIGN_ID (microcode revision; only exits where the CPU lacks it)
        result = 0; // writes (the "trigger CPUID update" idiom) are accepted and ignored
        break;
    case 0x1A0: // IA32_MISC_ENABLE: virtual (see VmxVcpu::misc_enable)
        if (write)
            v.misc_enable = value | VmxVcpu::misc_enable_default;
        else
            result = v.misc_enable;
        break;
    case 0x277: // IA32_PAT
        if (write)
            v.write(VmcsField::guest_pat, value);
        else
            result = v.read(VmcsField::guest_pat);
        break;
    case 0xC0000080: { // IA32_EFER: SCE, LME, NXE writable; LMA follows the mode
        u64 efer = v.read(VmcsField::guest_efer);
        if (write) {
            constexpr u64 writable = (1ull << 0) | (1ull << 8) | (1ull << 11);
            if (value & ~(writable | (1ull << 10))) {
                known = false;
                break;
            }
            v.write(VmcsField::guest_efer, (efer & ~writable) | (value & writable));
        } else {
            result = efer;
        }
        break;
    }
    case 0xC0000100: // FS base
        if (write)
            v.write(VmcsField::guest_fs_base, value);
        else
            result = v.read(VmcsField::guest_fs_base);
        break;
    case 0xC0000101: // GS base
        if (write)
            v.write(VmcsField::guest_gs_base, value);
        else
            result = v.read(VmcsField::guest_gs_base);
        break;
    default:
        known = false;
        break;
    }
    if (!known) {
        v.inject_gp(); // RIP stays on the faulting instruction
        return {ExitAction::resume, nullptr};
    }
    if (!write) {
        v.regs.rax = result & 0xFFFFFFFF;
        v.regs.rdx = result >> 32;
    }
    v.skip_instruction(e.instruction_length);
    return {ExitAction::resume, nullptr};
}

// MOV to CR0/CR4 that changes a bit the guest/host mask owns (CR0.NE, CR4.VMXE): the guest
// sees its value through the read shadow; the real register keeps the bit VMX requires.
ExitOutcome handle_cr_access(VmxVcpu& v, const VmExit& e) {
    vmx::CrAccess c = vmx::decode_cr_access(e.qualification);
    if (c.access != 0 || (c.cr != 0 && c.cr != 4) || c.gpr == 4)
        return {ExitAction::to_owner, nullptr};
    u64 value = gpr(v.regs, c.gpr);
    if (c.cr == 0) {
        v.write(VmcsField::cr0_read_shadow, value);
        v.write(VmcsField::guest_cr0, value | (1ull << 5));
    } else {
        if (value & (1ull << 13)) { // CR4.VMXE: no nested VT-x for guests
            v.inject_gp();
            return {ExitAction::resume, nullptr};
        }
        v.write(VmcsField::cr4_read_shadow, value);
        v.write(VmcsField::guest_cr4, value | (1ull << 13));
    }
    v.skip_instruction(e.instruction_length);
    return {ExitAction::resume, nullptr};
}

} // namespace

void set_cpuid_quirks(const CpuidQuirks& quirks) {
    cpuid_quirks = quirks;
}

ExitOutcome handle_exit(VmxVcpu& v, const VmExit& e) {
    if (e.entry_failed)
        return {ExitAction::stop_guest, "VM entry failed"};
    switch (static_cast<ExitReason>(e.reason)) {
    case ExitReason::cpuid:
        return handle_cpuid(v, e);
    case ExitReason::rdmsr:
        return handle_msr(v, e, false);
    case ExitReason::wrmsr:
        return handle_msr(v, e, true);
    case ExitReason::cr_access:
        return handle_cr_access(v, e);
    case ExitReason::triple_fault:
        return {ExitAction::stop_guest, "guest triple-faulted"};
    case ExitReason::ept_misconfiguration:
        return {ExitAction::stop_guest, "EPT misconfiguration"};
    case ExitReason::init_signal:
        // INIT: the vCPU takes the INIT state and waits for a SIPI (Vol. 3A 9.1, Vol. 3C
        // 25.4.2), as the physical CPU would outside VMX. (Root vCPUs: root_apic.hpp.)
        v.reset_to_wait_for_sipi();
        return {ExitAction::resume, nullptr};
    case ExitReason::startup_ipi:
        v.start_at_sipi(static_cast<u8>(e.qualification & 0xFF));
        return {ExitAction::resume, nullptr};
    default:
        return {ExitAction::to_owner, nullptr};
    }
}

} // namespace godwit::hv
