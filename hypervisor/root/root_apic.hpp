// The root partition's local APICs. They are the hardware's (passed through), except that
// writes to the interrupt command register are trapped, so INIT and STARTUP IPIs for the
// root's own CPUs follow root_startup.hpp instead of reaching them as hardware INITs:
// - xAPIC: the APIC page is read-only in the root's EPT until every root vCPU has been
//   started; each write exits, is decoded (vmx_instruction.hpp) and, unless it is an INIT
//   or STARTUP IPI, done on the hardware. Then the page is writable again (EOIs and timer
//   writes would otherwise exit for good), and a later INIT (hotplug) is the hardware's;
// - x2APIC: WRMSR to the ICR (MSR 0x830) exits;
// - IA32_APIC_BASE writes exit: the root may switch modes, not move the page out of the trap.
// See docs/hypervisor-root.md, "Root SMP".
#pragma once

#include "arch/x86/vmx/vmx_vcpu.hpp"
#include "ept/ept_table.hpp"
#include "root/root_startup.hpp"

namespace godwit::hv {

// At launch, on the BSP, before any root vCPU runs: write-protects the APIC page in the
// root's EPT and sets the MSR-bitmap bits. Every CPU starts `absent`; the BSP `running`.
// Returns why it cannot, or nullptr.
const char* root_apic_prepare(ept::EptTable& root_ept, u8* msr_bitmap);

// The state of the root vCPU on CPU `index` (the APs set `waiting_for_sipi` once parked).
void root_apic_set_state(u32 index, root::ApState state);

// Exit handlers; each returns false when the exit is not its own (another EPT violation,
// another MSR), and otherwise has completed or faulted the instruction.
bool root_apic_ept_violation(VmxVcpu& v, const VmExit& e);
bool root_apic_wrmsr(VmxVcpu& v, const VmExit& e);

// INIT and SIPI VM exits of a root vCPU.
void root_apic_init_exit(VmxVcpu& v);
void root_apic_sipi_exit(VmxVcpu& v, const VmExit& e);

} // namespace godwit::hv
