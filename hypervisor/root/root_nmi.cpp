#include "root/root_nmi.hpp"

#include "arch/x86/vmx/vmcs_fields.hpp"
#include "arch/x86/vmx/vmx_event.hpp"
#include "arch/x86/vmx/vmx_vcpu.hpp"
#include "kernel/console.hpp"
#include "kernel/percpu.hpp"

namespace godwit::hv {

void note_root_nmi_from_guest(u32 partition, u32 vcpu) {
    PerCpu& self = this_cpu();
    self.root_nmi_pending = true;
    // Say so a few times: it proves the path, and NMIs can come by the thousand (perf).
    static u32 logged = 0;
    if (__atomic_fetch_add(&logged, 1, __ATOMIC_RELAXED) < 8)
        log(LogLevel::info,
            "cpu %u: an NMI came while partition %u vCPU %u ran: passed to the root", self.index,
            partition, vcpu);
}

void inject_pending_root_nmi(VmxVcpu& root) {
    PerCpu& self = this_cpu();
    if (!self.root_nmi_pending || root.injection_pending())
        return;
    if (!vmx::nmi_injectable(root.read(vmx::VmcsField::guest_interruptibility)))
        return;
    // Cleared before the entry: an NMI arriving from here on is noted again and goes at the
    // next entry (one arriving before this line merges with this one, as NMIs do).
    self.root_nmi_pending = false;
    ++self.nmis_for_root;
    root.write(vmx::VmcsField::entry_interruption_info, vmx::nmi_injection);
}

} // namespace godwit::hv
