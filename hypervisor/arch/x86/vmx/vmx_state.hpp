// VT-x state shared by the VMX code: capabilities read at boot and per-CPU VMXON state.
#pragma once

#include "arch/x86/vmx/vmx_capabilities.hpp"

namespace godwit::hv {

struct VmxCpuState {
    bool on;
    PhysAddr vmxon_region;
};

const vmx::Features& vmx_features();
const vmx::CapabilityMsrs& vmx_capabilities();
VmxCpuState& vmx_this_cpu();
u32 vmx_cpus_on();
bool vmx_cpu_on(u32 index); // CPU `index` is in VMX operation

} // namespace godwit::hv
