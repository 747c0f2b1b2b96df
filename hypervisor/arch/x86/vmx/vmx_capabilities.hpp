// VT-x capability decoding and VM-execution control computation (Intel SDM Vol. 3D,
// Appendix A "VMX Capability Reporting Facility"). Pure: the kernel reads the MSRs into
// CapabilityMsrs; unit tests feed recorded or synthetic values.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv::vmx {

namespace msr {
inline constexpr u32 feature_control = 0x3A;
inline constexpr u32 vmx_basic = 0x480;
inline constexpr u32 pinbased_ctls = 0x481;
inline constexpr u32 procbased_ctls = 0x482;
inline constexpr u32 exit_ctls = 0x483;
inline constexpr u32 entry_ctls = 0x484;
inline constexpr u32 misc = 0x485;
inline constexpr u32 cr0_fixed0 = 0x486;
inline constexpr u32 cr0_fixed1 = 0x487;
inline constexpr u32 cr4_fixed0 = 0x488;
inline constexpr u32 cr4_fixed1 = 0x489;
inline constexpr u32 procbased_ctls2 = 0x48B;
inline constexpr u32 ept_vpid_cap = 0x48C;
inline constexpr u32 true_pinbased_ctls = 0x48D;
inline constexpr u32 true_procbased_ctls = 0x48E;
inline constexpr u32 true_exit_ctls = 0x48F;
inline constexpr u32 true_entry_ctls = 0x490;
} // namespace msr

struct CapabilityMsrs {
    u64 basic;
    u64 pinbased, procbased, exit, entry; // the TRUE_* MSRs when basic bit 55 says they exist
    u64 procbased2;                       // 0 when secondary controls are not supported
    u64 ept_vpid;                         // 0 when neither EPT nor VPID
    u64 misc;
    u64 cr0_fixed0, cr0_fixed1, cr4_fixed0, cr4_fixed1;
};

// Bits of the controls Godwit uses (Intel SDM Vol. 3C, 25.6 and 25.7-25.8).
namespace pin {
inline constexpr u32 external_interrupt_exiting = 1u << 0;
inline constexpr u32 nmi_exiting = 1u << 3;
inline constexpr u32 virtual_nmis = 1u << 5;
inline constexpr u32 preemption_timer = 1u << 6;
} // namespace pin
namespace proc {
inline constexpr u32 interrupt_window_exiting = 1u << 2;
inline constexpr u32 use_tsc_offsetting = 1u << 3;
inline constexpr u32 hlt_exiting = 1u << 7;
inline constexpr u32 unconditional_io_exiting = 1u << 24;
inline constexpr u32 use_io_bitmaps = 1u << 25;
inline constexpr u32 use_msr_bitmaps = 1u << 28;
inline constexpr u32 activate_secondary = 1u << 31;
} // namespace proc
namespace proc2 {
inline constexpr u32 enable_ept = 1u << 1;
inline constexpr u32 enable_rdtscp = 1u << 3;
inline constexpr u32 enable_vpid = 1u << 5;
inline constexpr u32 unrestricted_guest = 1u << 7;
inline constexpr u32 enable_invpcid = 1u << 12;
inline constexpr u32 enable_pml = 1u << 17;
inline constexpr u32 enable_xsaves = 1u << 20;
} // namespace proc2
namespace exit_ctl {
inline constexpr u32 host_address_space_64 = 1u << 9;
inline constexpr u32 acknowledge_interrupt = 1u << 15;
inline constexpr u32 save_pat = 1u << 18;
inline constexpr u32 load_pat = 1u << 19;
inline constexpr u32 save_efer = 1u << 20;
inline constexpr u32 load_efer = 1u << 21;
inline constexpr u32 save_preemption_timer = 1u << 22;
} // namespace exit_ctl
namespace entry_ctl {
inline constexpr u32 ia32e_guest = 1u << 9;
inline constexpr u32 load_pat = 1u << 14;
inline constexpr u32 load_efer = 1u << 15;
} // namespace entry_ctl

struct Features {
    u32 vmcs_revision;
    u32 vmcs_size;
    bool true_controls;
    bool secondary_controls;
    bool ept, vpid, unrestricted_guest, pml, ept_accessed_dirty;
    bool ept_4level, ept_wb, ept_2m_pages, ept_1g_pages;
    bool invept, invept_single, invept_all, invvpid, invvpid_single, invvpid_all;
    bool preemption_timer;
    u32 preemption_timer_shift; // timer counts down every 2^shift TSC cycles
    bool wait_for_sipi;         // activity state 3 supported
};

Features decode_features(const CapabilityMsrs& caps);

// Which MSR numbers to read: the TRUE_* ones when IA32_VMX_BASIC bit 55 is set.
constexpr bool has_true_controls(u64 basic) {
    return (basic >> 55) & 1;
}

// A control value from a capability MSR: bits 31:0 = allowed-0 settings (1 = must be 1),
// bits 63:32 = allowed-1 settings (0 = must be 0). Returns false (and leaves `out` alone)
// when a `required` bit cannot be 1; `optional` bits are set only where allowed.
bool compute_controls(u64 capability, u32 required, u32 optional, u32& out);

// Fixed CR0/CR4 bits in VMX operation (Appendix A.7/A.8): returns `value` with the fixed-1
// bits set and the fixed-0 bits cleared.
constexpr u64 apply_fixed_bits(u64 value, u64 fixed0, u64 fixed1) {
    return (value | fixed0) & fixed1;
}

} // namespace godwit::hv::vmx
