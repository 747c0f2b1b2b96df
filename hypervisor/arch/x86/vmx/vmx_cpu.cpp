// VT-x bring-up on each CPU: capability check (BSP) and VMXON (every CPU).
// Intel SDM Vol. 3C, 24.6 "Discovering Support for VMX", 24.7 "Enabling and Entering VMX
// Operation", 24.8 "Restrictions on VMX Operation".
#include "arch/x86/vmx/vmx_cpu.hpp"

#include "arch/x86/intrinsics.hpp"
#include "arch/x86/vmx/vmx_capabilities.hpp"
#include "arch/x86/vmx/vmx_state.hpp"
#include "kernel/console.hpp"
#include "kernel/percpu.hpp"
#include "memory/frame_allocator.hpp"

namespace godwit::hv {
namespace {

vmx::CapabilityMsrs caps;
vmx::Features features;
VmxCpuState cpu_state[max_cpus];

constexpr u64 cr4_vmxe = 1ull << 13;
constexpr u64 cr4_osxsave = 1ull << 18;

vmx::CapabilityMsrs read_capabilities() {
    vmx::CapabilityMsrs c{};
    c.basic = x86::rdmsr(vmx::msr::vmx_basic);
    bool use_true = vmx::has_true_controls(c.basic);
    c.pinbased = x86::rdmsr(use_true ? vmx::msr::true_pinbased_ctls : vmx::msr::pinbased_ctls);
    c.procbased = x86::rdmsr(use_true ? vmx::msr::true_procbased_ctls : vmx::msr::procbased_ctls);
    c.exit = x86::rdmsr(use_true ? vmx::msr::true_exit_ctls : vmx::msr::exit_ctls);
    c.entry = x86::rdmsr(use_true ? vmx::msr::true_entry_ctls : vmx::msr::entry_ctls);
    c.misc = x86::rdmsr(vmx::msr::misc);
    c.cr0_fixed0 = x86::rdmsr(vmx::msr::cr0_fixed0);
    c.cr0_fixed1 = x86::rdmsr(vmx::msr::cr0_fixed1);
    c.cr4_fixed0 = x86::rdmsr(vmx::msr::cr4_fixed0);
    c.cr4_fixed1 = x86::rdmsr(vmx::msr::cr4_fixed1);
    if ((c.procbased >> 32) & vmx::proc::activate_secondary) {
        c.procbased2 = x86::rdmsr(vmx::msr::procbased_ctls2);
        if ((c.procbased2 >> 32) & (vmx::proc2::enable_ept | vmx::proc2::enable_vpid)) {
            c.ept_vpid = x86::rdmsr(vmx::msr::ept_vpid_cap);
        }
    }
    return c;
}

} // namespace

const vmx::Features& vmx_features() {
    return features;
}
const vmx::CapabilityMsrs& vmx_capabilities() {
    return caps;
}
VmxCpuState& vmx_this_cpu() {
    return cpu_state[this_cpu().index];
}

bool vmx_check_support(const char** reason) {
    if (((x86::cpuid(1).ecx >> 5) & 1) == 0) {
        *reason = "CPU has no VMX (CPUID.1:ECX.VMX[bit 5] = 0)";
        return false;
    }
    u64 feature_control = x86::rdmsr(vmx::msr::feature_control);
    if ((feature_control & 1) == 0) {
        // Unlocked: enable VMX outside SMX and lock, as firmware normally does.
        x86::wrmsr(vmx::msr::feature_control, feature_control | 0x5);
    } else if ((feature_control & 0x4) == 0) {
        *reason =
            "VMX is disabled by firmware (IA32_FEATURE_CONTROL locked without VMX outside SMX)";
        return false;
    }
    caps = read_capabilities();
    features = vmx::decode_features(caps);
    if (!features.secondary_controls || !features.ept) {
        *reason = "CPU has VMX but no EPT (extended page tables are required)";
        return false;
    }
    if (!features.ept_4level || !features.ept_wb) {
        *reason = "EPT lacks 4-level walks or write-back paging structures";
        return false;
    }
    if (!features.unrestricted_guest) {
        *reason = "CPU has no unrestricted-guest support (needed for real-mode guests and Linux)";
        return false;
    }
    if (!features.vpid || !features.invept) {
        *reason = "CPU lacks VPID or INVEPT";
        return false;
    }
    log(LogLevel::info,
        "vmx: VMCS revision 0x%x, %s controls, EPT%s%s, VPID, unrestricted guest%s%s%s",
        features.vmcs_revision, features.true_controls ? "TRUE" : "default",
        features.ept_2m_pages ? " 2M" : "", features.ept_1g_pages ? " 1G" : "",
        features.ept_accessed_dirty ? ", EPT A/D" : "", features.pml ? ", PML" : ", no PML",
        features.preemption_timer ? ", preemption timer" : "");
    return true;
}

bool vmx_enable_on_this_cpu() {
    VmxCpuState& s = vmx_this_cpu();
    if (s.on)
        return true;
    if (((x86::cpuid(1).ecx >> 5) & 1) == 0)
        return false;
    u64 feature_control = x86::rdmsr(vmx::msr::feature_control);
    if ((feature_control & 1) == 0)
        x86::wrmsr(vmx::msr::feature_control, feature_control | 0x5);
    // Fixed CR0/CR4 bits in VMX operation; OSXSAVE so we can XSETBV on a guest's behalf.
    // Caches on (CR0.CD = CR0.NW = 0): VM entry and exit leave CD/NW alone (Vol. 3C
    // 26.3.2.1), so a hypervisor that kept the reset value CD = NW = 1 would hand it to its
    // guests, and Linux's MTRR code then faults clearing CD with NW still set.
    constexpr u64 cr0_nw = 1ull << 29, cr0_cd = 1ull << 30;
    x86::write_cr0(vmx::apply_fixed_bits(x86::read_cr0() & ~(cr0_cd | cr0_nw), caps.cr0_fixed0,
                                         caps.cr0_fixed1));
    u64 cr4 = x86::read_cr4() | cr4_vmxe;
    if ((x86::cpuid(1).ecx >> 26) & 1)
        cr4 |= cr4_osxsave;
    x86::write_cr4(vmx::apply_fixed_bits(cr4, caps.cr4_fixed0, caps.cr4_fixed1));
    PhysAddr region = alloc_frame();
    if (region.value == 0) {
        log(LogLevel::error, "vmx: no memory for the VMXON region");
        return false;
    }
    *static_cast<u32*>(phys_to_virt(region)) = features.vmcs_revision;
    if (!x86::vmxon(region.value)) {
        log(LogLevel::error, "vmx: VMXON failed");
        free_frame(region);
        return false;
    }
    s.vmxon_region = region;
    s.on = true;
    log(LogLevel::info, "vmx: VMXON on cpu %u", this_cpu().index);
    return true;
}

bool vmx_cpu_on(u32 index) {
    return index < max_cpus && cpu_state[index].on;
}

u32 vmx_cpus_on() {
    u32 n = 0;
    for (u32 i = 0; i < cpu_count(); ++i)
        n += cpu_state[i].on ? 1 : 0;
    return n;
}

} // namespace godwit::hv
