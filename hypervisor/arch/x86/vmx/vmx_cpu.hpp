// The boot code's view of VT-x: whether this machine can run Godwit, and VMXON on each CPU.
#pragma once

namespace godwit::hv {

// Checks CPUID/capability MSRs on the calling CPU: VMX, EPT (4-level, WB), unrestricted
// guest, VPID, TRUE_* controls. On failure returns false and points *reason at a
// human-readable sentence ("CPU has no VMX (CPUID.1:ECX.VMX=0)").
bool vmx_check_support(const char** reason);

// Enables VMX operation on the calling CPU (CR4.VMXE, fixed CR0/CR4 bits, VMXON region
// from the frame allocator). Called by the boot code on every CPU. Returns false (after
// logging why) on failure.
bool vmx_enable_on_this_cpu();

} // namespace godwit::hv
