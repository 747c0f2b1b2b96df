#include "arch/x86/vmx/vmx_exit.hpp"

namespace godwit::hv::vmx {

const char* exit_reason_name(u32 basic_reason) {
    switch (static_cast<ExitReason>(basic_reason)) {
    case ExitReason::exception_or_nmi:
        return "exception or NMI";
    case ExitReason::external_interrupt:
        return "external interrupt";
    case ExitReason::triple_fault:
        return "triple fault";
    case ExitReason::init_signal:
        return "INIT signal";
    case ExitReason::startup_ipi:
        return "SIPI";
    case ExitReason::interrupt_window:
        return "interrupt window";
    case ExitReason::cpuid:
        return "CPUID";
    case ExitReason::hlt:
        return "HLT";
    case ExitReason::invlpg:
        return "INVLPG";
    case ExitReason::rdtsc:
        return "RDTSC";
    case ExitReason::vmcall:
        return "VMCALL";
    case ExitReason::cr_access:
        return "CR access";
    case ExitReason::io_instruction:
        return "I/O instruction";
    case ExitReason::rdmsr:
        return "RDMSR";
    case ExitReason::wrmsr:
        return "WRMSR";
    case ExitReason::invalid_guest_state:
        return "VM-entry failure: invalid guest state";
    case ExitReason::msr_loading:
        return "VM-entry failure: MSR loading";
    case ExitReason::ept_violation:
        return "EPT violation";
    case ExitReason::ept_misconfiguration:
        return "EPT misconfiguration";
    case ExitReason::preemption_timer:
        return "VMX preemption timer";
    case ExitReason::xsetbv:
        return "XSETBV";
    case ExitReason::pml_full:
        return "page-modification log full";
    }
    return "unhandled exit reason";
}

const char* vm_instruction_error_text(u32 error) {
    switch (error) {
    case 1:
        return "VMCALL executed in VMX root operation";
    case 2:
        return "VMCLEAR with invalid physical address";
    case 3:
        return "VMCLEAR with VMXON pointer";
    case 4:
        return "VMLAUNCH with non-clear VMCS";
    case 5:
        return "VMRESUME with non-launched VMCS";
    case 6:
        return "VMRESUME after VMXOFF";
    case 7:
        return "VM entry with invalid control field(s)";
    case 8:
        return "VM entry with invalid host-state field(s)";
    case 9:
        return "VMPTRLD with invalid physical address";
    case 10:
        return "VMPTRLD with VMXON pointer";
    case 11:
        return "VMPTRLD with incorrect VMCS revision identifier";
    case 12:
        return "VMREAD/VMWRITE from/to unsupported VMCS component";
    case 13:
        return "VMWRITE to read-only VMCS component";
    case 15:
        return "VMXON executed in VMX root operation";
    case 16:
        return "VM entry with invalid executive-VMCS pointer";
    case 17:
        return "VM entry with non-launched executive VMCS";
    case 26:
        return "VM entry with events blocked by MOV SS";
    case 28:
        return "invalid operand to INVEPT/INVVPID";
    default:
        return "unknown VM-instruction error";
    }
}

} // namespace godwit::hv::vmx
