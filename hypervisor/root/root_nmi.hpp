// NMIs that belong to the root partition but reached a CPU while it ran the hypervisor or a
// guest vCPU. Guest vCPUs exit on NMIs ("NMI exiting"); without that a root NMI (perf, the
// NMI watchdog, an NMI backtrace IPI from another CPU) that came during a guest run went
// through the *guest's* IDT and was lost to the root. The NMI is noted per CPU (PerCpu::
// root_nmi_pending, also set by the hypervisor's own NMI handler) and injected into the
// root's vCPU on that CPU at its next VM entry, as KVM re-raises a host NMI after an NMI exit.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

class VmxVcpu;

// A guest vCPU exited because of an NMI on this CPU: it is the root's (the run then ends).
void note_root_nmi_from_guest(u32 partition, u32 vcpu);

// Before each entry of the root's vCPU on this CPU: injects the NMI noted here when the root
// can take one now (no event already queued, no STI/MOV-SS shadow, not in its own NMI
// handler); otherwise it stays noted for a later entry.
void inject_pending_root_nmi(VmxVcpu& root);

} // namespace godwit::hv
