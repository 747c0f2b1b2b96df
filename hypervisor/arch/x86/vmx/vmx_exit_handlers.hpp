// VM-exit dispatch for what the hypervisor handles itself for every guest, whatever runs
// it: CPUID, MSR reads/writes, CR0/CR4 writes to the bits VMX pins (NE, VMXE), INIT/SIPI,
// triple fault, EPT misconfiguration, VM-entry failures. Everything else (port I/O,
// VMCALL, EPT violations, HLT, preemption timer, PML full) goes back to the owner of the
// vCPU: the self-tests now, the VMM through /dev/godwit later.
#pragma once

#include "arch/x86/cpuid_policy.hpp"
#include "arch/x86/vmx/vmx_vcpu.hpp"

namespace godwit::hv {

enum class ExitAction : u8 {
    resume,     // handled: enter the guest again
    to_owner,   // the vCPU's owner must handle this exit
    stop_guest, // the guest broke (triple fault, bad state): stop it, only it
};

struct ExitOutcome {
    ExitAction action;
    const char* why; // for stop_guest
};

ExitOutcome handle_exit(VmxVcpu& vcpu, const VmExit& exit);

// CPUID corrections every guest gets (set once at boot, before any guest runs).
void set_cpuid_quirks(const CpuidQuirks& quirks);

} // namespace godwit::hv
