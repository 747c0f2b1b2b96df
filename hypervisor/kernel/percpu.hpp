// Per-CPU data. Every CPU (the BSP and each AP the boot code started) has one PerCpu,
// reachable through this_cpu() (GS base points at it).
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

inline constexpr u32 max_cpus = 64;

struct PerCpu {
    PerCpu* self;         // GS:0 holds this pointer, so this_cpu() is one load
    u32 index;            // 0 = bootstrap processor
    u32 apic_id;          // from the MADT / CPUID
    u64 stack_top;        // this CPU's hypervisor stack
    void* vmx;            // owned by arch/x86/vmx (VMXON region, current VMCS, ...)
    volatile bool online; // set by the CPU itself once it runs C++ code
    u64 exits;            // VM exits handled on this CPU (hypercall CPU_LIST reports it)
    bool runs_root;       // this CPU runs a vCPU of the root partition
    // The guest partition whose vCPU this CPU is entering or running (null otherwise), and
    // how many guest entries it made: the dirty log's EPT flush waits on them.
    const void* guest;
    u64 guest_entries;
    // An NMI that reached this CPU while it ran the hypervisor or a guest vCPU. NMIs are the
    // root's (perf, its NMI watchdog, NMI backtraces): it gets this one injected at its vCPU's
    // next entry (root/root_nmi.cpp).
    volatile bool root_nmi_pending;
    u64 nmis_for_root; // NMIs passed on to the root this way
};

PerCpu& this_cpu();
bool this_cpu_ready();  // GS base points at this CPU's PerCpu (false early in boot)
u32 cpu_count();        // CPUs that came online (BSP + started APs)
PerCpu& cpu(u32 index); // index < cpu_count()

} // namespace godwit::hv
