#include "arch/x86/vmx/vmx_capabilities.hpp"

namespace godwit::hv::vmx {

bool compute_controls(u64 capability, u32 required, u32 optional, u32& out) {
    u32 must_be_one = static_cast<u32>(capability);
    u32 may_be_one = static_cast<u32>(capability >> 32);
    if ((required & ~may_be_one) != 0)
        return false;
    out = ((required | optional) & may_be_one) | must_be_one;
    return true;
}

Features decode_features(const CapabilityMsrs& caps) {
    Features f{};
    f.vmcs_revision = static_cast<u32>(caps.basic & 0x7FFFFFFF);
    f.vmcs_size = static_cast<u32>((caps.basic >> 32) & 0x1FFF);
    f.true_controls = has_true_controls(caps.basic);
    f.secondary_controls = ((caps.procbased >> 32) & proc::activate_secondary) != 0;
    u32 secondary_allowed = f.secondary_controls ? static_cast<u32>(caps.procbased2 >> 32) : 0;
    f.ept = secondary_allowed & proc2::enable_ept;
    f.vpid = secondary_allowed & proc2::enable_vpid;
    f.unrestricted_guest = secondary_allowed & proc2::unrestricted_guest;
    f.pml = secondary_allowed & proc2::enable_pml;
    u64 ev = (f.ept || f.vpid) ? caps.ept_vpid : 0;
    // IA32_VMX_EPT_VPID_CAP (Appendix A.10).
    f.ept_4level = (ev >> 6) & 1;
    f.ept_wb = (ev >> 14) & 1;
    f.ept_2m_pages = (ev >> 16) & 1;
    f.ept_1g_pages = (ev >> 17) & 1;
    f.invept = (ev >> 20) & 1;
    f.ept_accessed_dirty = (ev >> 21) & 1;
    f.invept_single = (ev >> 25) & 1;
    f.invept_all = (ev >> 26) & 1;
    f.invvpid = (ev >> 32) & 1;
    f.invvpid_single = (ev >> 41) & 1;
    f.invvpid_all = (ev >> 42) & 1;
    // PML needs EPT A/D flags (it logs when a dirty flag goes from 0 to 1).
    f.pml = f.pml && f.ept_accessed_dirty;
    f.preemption_timer = ((caps.pinbased >> 32) & pin::preemption_timer) != 0;
    f.preemption_timer_shift = static_cast<u32>(caps.misc & 0x1F);
    f.wait_for_sipi = (caps.misc >> 8) & 1;
    return f;
}

} // namespace godwit::hv::vmx
