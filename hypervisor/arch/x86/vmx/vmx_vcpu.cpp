#include "arch/x86/vmx/vmx_vcpu.hpp"

#include "arch/x86/intrinsics.hpp"
#include "arch/x86/vmx/vmcs.hpp"
#include "arch/x86/vmx/vmx_capabilities.hpp"
#include "arch/x86/vmx/vmx_event.hpp"
#include "arch/x86/vmx/vmx_exit.hpp"
#include "arch/x86/vmx/vmx_state.hpp"
#include "kernel/percpu.hpp"
#include "memory/frame_allocator.hpp"

extern "C" godwit::hv::u64 vmx_enter(godwit::hv::GuestRegisters* regs, godwit::hv::u64 launched);
extern "C" char vmx_exit_entry[];

namespace godwit::hv {
namespace {

using vmx::VmcsField;

constexpr u32 msr_efer = 0xC0000080;
constexpr u32 msr_pat = 0x277;
constexpr u32 msr_gs_base = 0xC0000101;
constexpr u64 efer_lme = 1ull << 8, efer_lma = 1ull << 10;
constexpr u64 cr0_pe = 1ull << 0, cr0_et = 1ull << 4, cr0_ne = 1ull << 5, cr0_pg = 1ull << 31;
constexpr u64 cr4_pae = 1ull << 5, cr4_vmxe = 1ull << 13;
constexpr u32 ar_unusable = 1u << 16;
constexpr u64 activity_wait_for_sipi = 3;

// The guest segment-register fields, in the hypercall ABI's order (godwit_segment_index).
struct SegmentFields {
    VmcsField selector, base, limit, rights;
};
constexpr SegmentFields segment_fields[GODWIT_SEG_COUNT] = {
    {VmcsField::guest_es_selector, VmcsField::guest_es_base, VmcsField::guest_es_limit,
     VmcsField::guest_es_access_rights},
    {VmcsField::guest_cs_selector, VmcsField::guest_cs_base, VmcsField::guest_cs_limit,
     VmcsField::guest_cs_access_rights},
    {VmcsField::guest_ss_selector, VmcsField::guest_ss_base, VmcsField::guest_ss_limit,
     VmcsField::guest_ss_access_rights},
    {VmcsField::guest_ds_selector, VmcsField::guest_ds_base, VmcsField::guest_ds_limit,
     VmcsField::guest_ds_access_rights},
    {VmcsField::guest_fs_selector, VmcsField::guest_fs_base, VmcsField::guest_fs_limit,
     VmcsField::guest_fs_access_rights},
    {VmcsField::guest_gs_selector, VmcsField::guest_gs_base, VmcsField::guest_gs_limit,
     VmcsField::guest_gs_access_rights},
    {VmcsField::guest_ldtr_selector, VmcsField::guest_ldtr_base, VmcsField::guest_ldtr_limit,
     VmcsField::guest_ldtr_access_rights},
    {VmcsField::guest_tr_selector, VmcsField::guest_tr_base, VmcsField::guest_tr_limit,
     VmcsField::guest_tr_access_rights},
};
constexpr godwit_segment_index data_segments[] = {GODWIT_SEG_DS, GODWIT_SEG_ES, GODWIT_SEG_SS,
                                                  GODWIT_SEG_FS, GODWIT_SEG_GS};

void write_segment(vmx::VmcsWriter& w, godwit_segment_index i, u64 selector, u64 base, u64 limit,
                   u64 rights) {
    w.write(segment_fields[i].selector, selector);
    w.write(segment_fields[i].base, base);
    w.write(segment_fields[i].limit, limit);
    w.write(segment_fields[i].rights, rights);
}

// Host state: this CPU as it is now (Vol. 3C, 25.5).
void write_host_fields(vmx::VmcsWriter& w) {
    x86::DescriptorTablePointer gdtr{}, idtr{};
    x86::sgdt(gdtr);
    x86::sidt(idtr);
    u16 tr = x86::read_tr();
    const u8* tss_descriptor = reinterpret_cast<const u8*>(gdtr.base + tr);
    u64 tr_base = u64{tss_descriptor[2]} | (u64{tss_descriptor[3]} << 8) |
                  (u64{tss_descriptor[4]} << 16) | (u64{tss_descriptor[7]} << 24) |
                  (u64{*reinterpret_cast<const u32*>(tss_descriptor + 8)} << 32);
    w.write(VmcsField::host_cr0, x86::read_cr0());
    w.write(VmcsField::host_cr3, x86::read_cr3());
    w.write(VmcsField::host_cr4, x86::read_cr4());
    w.write(VmcsField::host_cs_selector, x86::read_cs());
    w.write(VmcsField::host_ss_selector, x86::read_ss());
    w.write(VmcsField::host_ds_selector, x86::read_ds());
    w.write(VmcsField::host_es_selector, x86::read_es());
    w.write(VmcsField::host_fs_selector, 0);
    w.write(VmcsField::host_gs_selector, 0);
    w.write(VmcsField::host_tr_selector, tr);
    w.write(VmcsField::host_fs_base, 0);
    w.write(VmcsField::host_gs_base, x86::rdmsr(msr_gs_base));
    w.write(VmcsField::host_tr_base, tr_base);
    w.write(VmcsField::host_gdtr_base, gdtr.base);
    w.write(VmcsField::host_idtr_base, idtr.base);
    w.write(VmcsField::host_sysenter_cs, 0);
    w.write(VmcsField::host_sysenter_esp, 0);
    w.write(VmcsField::host_sysenter_eip, 0);
    w.write(VmcsField::host_efer, x86::rdmsr(msr_efer));
    w.write(VmcsField::host_rip, reinterpret_cast<u64>(vmx_exit_entry));
}

} // namespace

bool VmxVcpu::create(const VcpuConfig& c, const char** error) {
    const vmx::Features& f = vmx_features();
    const vmx::CapabilityMsrs& caps = vmx_capabilities();
    vmcs_ = alloc_frame();
    if (vmcs_.value == 0) {
        *error = "no memory for the VMCS";
        return false;
    }
    *static_cast<u32*>(phys_to_virt(vmcs_)) = f.vmcs_revision;
    if (!x86::vmclear(vmcs_.value) || !x86::vmptrld(vmcs_.value)) {
        *error = "VMCLEAR/VMPTRLD failed";
        return false;
    }
    launched_ = false;

    u32 pin = 0, proc = 0, proc2 = 0, exit = 0, entry = 0;
    bool real_mode = c.mode == GuestMode::real_mode;
    // Guest partitions exit on the root's interrupts and NMIs. NMI exiting goes with "virtual
    // NMIs": a guest's own NMI blocking is then virtual (its IRET ends it). Without them that
    // blocking is physical and, with NMI exiting, no guest IRET ends it (Vol. 3C 25.3,
    // 26.6.1): in Bochs the guest state saved at the first NMI exit kept NMIs blocked, and
    // that CPU took no interrupt after it (an RCU stall in the root). A CPU without virtual
    // NMIs (every VT-x CPU since 2008 has them) keeps the old behaviour: a root NMI during a
    // guest run reaches the guest.
    constexpr u32 root_nmis = vmx::pin::nmi_exiting | vmx::pin::virtual_nmis;
    bool nmis = c.exit_on_interrupts && ((caps.pinbased >> 32) & root_nmis) == root_nmis;
    u32 pin_required = (c.preemption_timer ? vmx::pin::preemption_timer : 0) |
                       (c.exit_on_interrupts ? vmx::pin::external_interrupt_exiting : 0) |
                       (nmis ? root_nmis : 0);
    u32 proc_required = vmx::proc::activate_secondary |
                        (c.root ? vmx::proc::use_msr_bitmaps
                                : vmx::proc::hlt_exiting | vmx::proc::unconditional_io_exiting) |
                        // A guest partition's TSC continues across save/restore and migration.
                        (c.exit_on_interrupts ? vmx::proc::use_tsc_offsetting : 0);
    u32 proc2_required =
        vmx::proc2::enable_ept | vmx::proc2::enable_vpid |
        (real_mode || c.root || c.exit_on_interrupts ? vmx::proc2::unrestricted_guest : 0) |
        (c.pml ? vmx::proc2::enable_pml : 0);
    u32 proc2_optional = vmx::proc2::enable_rdtscp | vmx::proc2::enable_invpcid |
                         (c.root ? vmx::proc2::enable_xsaves : 0);
    u32 exit_required =
        vmx::exit_ctl::host_address_space_64 | vmx::exit_ctl::save_efer | vmx::exit_ctl::load_efer;
    // Every vCPU's PAT is its own (guests' page attributes mean what their PAT says).
    u32 exit_optional = vmx::exit_ctl::save_pat | vmx::exit_ctl::load_pat;
    u32 entry_required = vmx::entry_ctl::load_efer |
                         (c.mode == GuestMode::long_mode ? vmx::entry_ctl::ia32e_guest : 0);
    u32 entry_optional = vmx::entry_ctl::load_pat;
    if (!vmx::compute_controls(caps.pinbased, pin_required, 0, pin) ||
        !vmx::compute_controls(caps.procbased, proc_required, 0, proc) ||
        !vmx::compute_controls(caps.procbased2, proc2_required, proc2_optional, proc2) ||
        !vmx::compute_controls(caps.exit, exit_required, exit_optional, exit) ||
        !vmx::compute_controls(caps.entry, entry_required, entry_optional, entry)) {
        *error = "a required VM-execution control is not supported by this CPU";
        return false;
    }
    if (c.wait_for_sipi && !f.wait_for_sipi) {
        *error = "the CPU cannot park a vCPU in wait-for-SIPI (IA32_VMX_MISC bit 8)";
        return false;
    }
    if (!c.root) {
        // Without "use MSR bitmaps" every RDMSR/WRMSR exits: what the self-tests want.
        proc &= ~vmx::proc::use_msr_bitmaps;
    }

    vmx::VmcsWriter w;
    w.write(VmcsField::pin_based_controls, pin);
    w.write(VmcsField::primary_processor_controls, proc);
    w.write(VmcsField::secondary_processor_controls, proc2);
    w.write(VmcsField::exit_controls, exit);
    w.write(VmcsField::entry_controls, entry);
    w.write(VmcsField::exception_bitmap, 0);
    w.write(VmcsField::cr3_target_count, 0);
    w.write(VmcsField::tsc_offset, 0);
    w.write(VmcsField::ept_pointer, c.eptp);
    w.write(VmcsField::vpid, c.vpid);
    w.write(VmcsField::vmcs_link_pointer, ~0ull);
    if (proc & vmx::proc::use_msr_bitmaps)
        w.write(VmcsField::msr_bitmap, c.msr_bitmap);
    if (proc2 & vmx::proc2::enable_xsaves)
        w.write(VmcsField::xss_exiting_bitmap, 0);
    if (exit & vmx::exit_ctl::load_pat)
        w.write(VmcsField::host_pat, x86::rdmsr(msr_pat));
    if (c.pml) {
        w.write(VmcsField::pml_address, c.pml_buffer);
        w.write(VmcsField::guest_pml_index, 511);
    }
    if (c.preemption_timer)
        w.write(VmcsField::guest_preemption_timer, c.preemption_timer_value);

    write_host_fields(w);

    // Guest state. CR0.NE and CR4.VMXE must stay set under VMX; the read shadows hide them
    // from the guest (guest/host masks), as a real machine would show them clear.
    bool long_mode = !real_mode;
    u64 cr0 = long_mode ? (cr0_pe | cr0_et | cr0_ne | cr0_pg) : (cr0_et | cr0_ne);
    u64 cr4 = (long_mode ? cr4_pae : 0) | cr4_vmxe;
    u64 fixed0_cr0 = caps.cr0_fixed0 & ~(long_mode ? 0 : (cr0_pe | cr0_pg)); // unrestricted guest
    w.write(VmcsField::guest_cr0, vmx::apply_fixed_bits(cr0, fixed0_cr0, caps.cr0_fixed1));
    w.write(VmcsField::guest_cr4, vmx::apply_fixed_bits(cr4, caps.cr4_fixed0, caps.cr4_fixed1));
    w.write(VmcsField::cr0_guest_host_mask, cr0_ne);
    w.write(VmcsField::cr0_read_shadow, cr0 & ~cr0_ne);
    w.write(VmcsField::cr4_guest_host_mask, cr4_vmxe);
    w.write(VmcsField::cr4_read_shadow, cr4 & ~cr4_vmxe);
    w.write(VmcsField::guest_cr3, c.cr3);
    w.write(VmcsField::guest_efer, long_mode ? (efer_lme | efer_lma) : 0);
    // The root continues with the firmware's PAT; other vCPUs start at the reset value
    // (Vol. 3A 11.12.4).
    constexpr u64 pat_reset_value = 0x0007040600070406ull;
    w.write(VmcsField::guest_pat, c.root ? x86::rdmsr(msr_pat) : pat_reset_value);
    w.write(VmcsField::guest_dr7, 0x400);
    w.write(VmcsField::guest_rflags, 0x2);
    w.write(VmcsField::guest_rip, c.rip);
    w.write(VmcsField::guest_rsp, c.rsp);
    w.write(VmcsField::guest_interruptibility, 0);
    w.write(VmcsField::guest_activity_state, c.wait_for_sipi ? activity_wait_for_sipi : 0);
    w.write(VmcsField::guest_pending_debug, 0);
    w.write(VmcsField::guest_sysenter_cs, 0);
    w.write(VmcsField::guest_sysenter_esp, 0);
    w.write(VmcsField::guest_sysenter_eip, 0);

    if (long_mode) {
        w.write(VmcsField::guest_cs_selector, c.code_selector);
        w.write(VmcsField::guest_cs_base, 0);
        w.write(VmcsField::guest_cs_limit, 0xFFFFFFFF);
        w.write(VmcsField::guest_cs_access_rights, 0xA09B); // 64-bit code, present, accessed
        for (godwit_segment_index i : data_segments)
            write_segment(w, i, c.data_selector, 0, 0xFFFFFFFF, 0xC093);
        w.write(VmcsField::guest_gdtr_base, c.gdt_base);
        w.write(VmcsField::guest_gdtr_limit, c.gdt_limit);
    } else {
        w.write(VmcsField::guest_cs_selector, 0);
        w.write(VmcsField::guest_cs_base, 0);
        w.write(VmcsField::guest_cs_limit, 0xFFFF);
        w.write(VmcsField::guest_cs_access_rights, 0x9B);
        for (godwit_segment_index i : data_segments)
            write_segment(w, i, 0, 0, 0xFFFF, 0x93);
        w.write(VmcsField::guest_gdtr_base, 0);
        w.write(VmcsField::guest_gdtr_limit, 0xFFFF);
    }
    w.write(VmcsField::guest_idtr_base, 0);
    w.write(VmcsField::guest_idtr_limit, long_mode ? 0 : 0x3FF);
    w.write(VmcsField::guest_ldtr_selector, 0);
    w.write(VmcsField::guest_ldtr_base, 0);
    w.write(VmcsField::guest_ldtr_limit, 0);
    w.write(VmcsField::guest_ldtr_access_rights, ar_unusable);
    w.write(VmcsField::guest_tr_selector, 0);
    w.write(VmcsField::guest_tr_base, 0);
    w.write(VmcsField::guest_tr_limit, 0x67);
    w.write(VmcsField::guest_tr_access_rights, 0x8B); // busy TSS, present
    if (!w.ok()) {
        *error = "VMWRITE to a VMCS field failed";
        return false;
    }
    return true;
}

VmExit VmxVcpu::run() {
    x86::vmptrld(vmcs_.value);
    VmExit e{};
    // CR2 is not part of the VMCS: each vCPU keeps its own across exits (another vCPU, or
    // the root taking a page fault, would change it between a guest #PF and its handler).
    x86::write_cr2(cr2);
    u64 failed = vmx_enter(&regs, launched_ ? 1 : 0);
    cr2 = x86::read_cr2();
    if (failed != 0) {
        e.entry_failed = true;
        e.instruction_error = static_cast<u32>(vmx::vmcs_read(VmcsField::vm_instruction_error));
        return e;
    }
    launched_ = true;
    vmx::ExitReasonField reason =
        vmx::decode_exit_reason(static_cast<u32>(vmx::vmcs_read(VmcsField::exit_reason)));
    e.reason = reason.basic;
    e.entry_failed = reason.entry_failure;
    e.qualification = vmx::vmcs_read(VmcsField::exit_qualification);
    e.guest_physical = vmx::vmcs_read(VmcsField::guest_physical_address);
    e.guest_rip = vmx::vmcs_read(VmcsField::guest_rip);
    e.instruction_length = static_cast<u32>(vmx::vmcs_read(VmcsField::exit_instruction_length));
    // Blocking by SMI must be 0 outside SMM (Vol. 3C 26.3.1.5), and no vCPU runs in SMM. Bochs
    // 2.7 keeps SMI masked on a CPU whose root vCPU it started from wait-for-SIPI and saves
    // that mask into every VMCS that CPU exits from (root or guest): the next entry would fail.
    u64 blocking = vmx::vmcs_read(VmcsField::guest_interruptibility);
    if ((blocking & 4) != 0)
        write(VmcsField::guest_interruptibility, blocking & ~u64{4});
    return e;
}

void VmxVcpu::write_host_state() {
    x86::vmptrld(vmcs_.value);
    vmx::VmcsWriter w;
    write_host_fields(w);
}

void VmxVcpu::inject_gp() {
    write(VmcsField::entry_interruption_info, 0x80000B0D); // vector 13, error code, valid
    write(VmcsField::entry_exception_error_code, 0);
}

void VmxVcpu::inject_interrupt(u8 vector) {
    write(VmcsField::entry_interruption_info, 0x80000000u | vector); // type 0: external
}

bool VmxVcpu::injection_pending() const {
    return (read(VmcsField::entry_interruption_info) & 0x80000000u) != 0;
}

bool VmxVcpu::interrupts_open() const {
    constexpr u64 rflags_if = 1u << 9;
    constexpr u64 sti_or_mov_ss_blocking = vmx::blocking_by_sti | vmx::blocking_by_mov_ss;
    return (read(VmcsField::guest_rflags) & rflags_if) != 0 &&
           (read(VmcsField::guest_interruptibility) & sti_or_mov_ss_blocking) == 0;
}

void VmxVcpu::request_interrupt_window(bool on) {
    u64 proc = read(VmcsField::primary_processor_controls);
    u64 updated = on ? proc | vmx::proc::interrupt_window_exiting
                     : proc & ~u64{vmx::proc::interrupt_window_exiting};
    if (updated != proc)
        write(VmcsField::primary_processor_controls, updated);
}

void VmxVcpu::set_preemption_timer(bool on, u64 tsc_cycles) {
    const vmx::Features& f = vmx_features();
    if (!f.preemption_timer)
        return; // the guest then sees its timer at the next exit of any kind
    u64 pin = read(VmcsField::pin_based_controls);
    u64 updated = on ? pin | vmx::pin::preemption_timer : pin & ~u64{vmx::pin::preemption_timer};
    if (updated != pin)
        write(VmcsField::pin_based_controls, updated);
    if (on) {
        u64 ticks = tsc_cycles >> f.preemption_timer_shift;
        write(VmcsField::guest_preemption_timer, ticks > 0xFFFFFFFFu ? 0xFFFFFFFFu : ticks);
    }
}

void VmxVcpu::requeue_interrupted_event() {
    u64 info = read(VmcsField::idt_vectoring_info);
    if ((info & 0x80000000u) == 0)
        return;
    write(VmcsField::entry_interruption_info, info & ~u64{1u << 12}); // bit 12 is undefined
    if (info & (1u << 11))
        write(VmcsField::entry_exception_error_code, read(VmcsField::idt_vectoring_error_code));
    // Software interrupts/exceptions need the instruction length (Vol. 3C 26.6.1.3).
    write(VmcsField::entry_instruction_length, read(VmcsField::exit_instruction_length));
}

void VmxVcpu::start_at_sipi(u8 vector) {
    write(VmcsField::guest_cs_selector, u64{vector} << 8);
    write(VmcsField::guest_cs_base, u64{vector} << 12);
    write(VmcsField::guest_rip, 0);
    write(VmcsField::guest_activity_state, 0);
    // A CPU just started by SIPI blocks nothing (Bochs reports SMI blocking in the state
    // saved at the SIPI exit, which VM entry outside SMM refuses).
    write(VmcsField::guest_interruptibility, 0);
    write(VmcsField::guest_pending_debug, 0);
}

void VmxVcpu::inject_ud() {
    write(VmcsField::entry_interruption_info, 0x80000306); // vector 6, valid
}

void VmxVcpu::release() {
    x86::vmclear(vmcs_.value);
    launched_ = false;
}

void VmxVcpu::set_state(const godwit_hc_vcpu_state& s) {
    const vmx::CapabilityMsrs& caps = vmx_capabilities();
    x86::vmptrld(vmcs_.value);
    vmx::VmcsWriter w;
    GuestRegisters& r = regs;
    r.rax = s.gpr[0];
    r.rcx = s.gpr[1];
    r.rdx = s.gpr[2];
    r.rbx = s.gpr[3];
    w.write(VmcsField::guest_rsp, s.gpr[4]);
    r.rbp = s.gpr[5];
    r.rsi = s.gpr[6];
    r.rdi = s.gpr[7];
    r.r8 = s.gpr[8];
    r.r9 = s.gpr[9];
    r.r10 = s.gpr[10];
    r.r11 = s.gpr[11];
    r.r12 = s.gpr[12];
    r.r13 = s.gpr[13];
    r.r14 = s.gpr[14];
    r.r15 = s.gpr[15];
    w.write(VmcsField::guest_rip, s.rip);
    w.write(VmcsField::guest_rflags, s.rflags | 0x2);
    // CR0.NE and CR4.VMXE stay set underneath, hidden by the read shadows; with unrestricted
    // guest CR0.PE/PG may be clear.
    w.write(VmcsField::guest_cr0,
            vmx::apply_fixed_bits(s.cr0, caps.cr0_fixed0 & ~(cr0_pe | cr0_pg), caps.cr0_fixed1));
    w.write(VmcsField::cr0_read_shadow, s.cr0);
    w.write(VmcsField::guest_cr4,
            vmx::apply_fixed_bits(s.cr4 | cr4_vmxe, caps.cr4_fixed0, caps.cr4_fixed1));
    w.write(VmcsField::cr4_read_shadow, s.cr4);
    w.write(VmcsField::guest_cr3, s.cr3);
    w.write(VmcsField::guest_efer, s.efer);
    u64 entry = vmx::vmcs_read(VmcsField::entry_controls);
    entry = (s.efer & efer_lma) ? (entry | vmx::entry_ctl::ia32e_guest)
                                : (entry & ~vmx::entry_ctl::ia32e_guest);
    w.write(VmcsField::entry_controls, entry);
    for (u32 i = 0; i < GODWIT_SEG_COUNT; ++i) {
        const godwit_hc_segment& g = s.segments[i];
        u64 rights = g.access_rights & ~u64{GODWIT_SEG_UNUSABLE};
        if (g.access_rights & GODWIT_SEG_UNUSABLE)
            rights |= ar_unusable;
        write_segment(w, static_cast<godwit_segment_index>(i), g.selector, g.base, g.limit, rights);
    }
    w.write(VmcsField::guest_gdtr_base, s.gdtr_base);
    w.write(VmcsField::guest_gdtr_limit, s.gdtr_limit);
    w.write(VmcsField::guest_idtr_base, s.idtr_base);
    w.write(VmcsField::guest_idtr_limit, s.idtr_limit);
    w.write(VmcsField::guest_activity_state, 0);
    w.write(VmcsField::guest_interruptibility, 0);
    w.write(VmcsField::guest_pending_debug, 0);
    w.write(VmcsField::entry_interruption_info, 0);
}

void VmxVcpu::get_state(godwit_hc_vcpu_state& s) const {
    x86::vmptrld(vmcs_.value);
    const GuestRegisters& r = regs;
    const u64 gpr[16] = {r.rax, r.rcx, r.rdx, r.rbx, vmx::vmcs_read(VmcsField::guest_rsp),
                         r.rbp, r.rsi, r.rdi, r.r8,  r.r9,
                         r.r10, r.r11, r.r12, r.r13, r.r14,
                         r.r15};
    for (u32 i = 0; i < 16; ++i)
        s.gpr[i] = gpr[i];
    s.rip = vmx::vmcs_read(VmcsField::guest_rip);
    s.rflags = vmx::vmcs_read(VmcsField::guest_rflags);
    s.cr0 = guest_visible_cr0();
    s.cr3 = vmx::vmcs_read(VmcsField::guest_cr3);
    s.cr4 = guest_visible_cr4();
    s.efer = vmx::vmcs_read(VmcsField::guest_efer);
    for (u32 i = 0; i < GODWIT_SEG_COUNT; ++i) {
        s.segments[i].selector = static_cast<u16>(vmx::vmcs_read(segment_fields[i].selector));
        s.segments[i].base = vmx::vmcs_read(segment_fields[i].base);
        s.segments[i].limit = static_cast<u32>(vmx::vmcs_read(segment_fields[i].limit));
        u64 rights = vmx::vmcs_read(segment_fields[i].rights);
        s.segments[i].access_rights = static_cast<u16>(
            (rights & 0xF0FF) | ((rights & ar_unusable) ? GODWIT_SEG_UNUSABLE : 0));
    }
    s.gdtr_base = vmx::vmcs_read(VmcsField::guest_gdtr_base);
    s.gdtr_limit = static_cast<u32>(vmx::vmcs_read(VmcsField::guest_gdtr_limit));
    s.idtr_base = vmx::vmcs_read(VmcsField::guest_idtr_base);
    s.idtr_limit = static_cast<u32>(vmx::vmcs_read(VmcsField::guest_idtr_limit));
}

void VmxVcpu::skip_instruction(u32 length) {
    x86::vmptrld(vmcs_.value);
    x86::vmwrite(static_cast<u64>(VmcsField::guest_rip),
                 vmx::vmcs_read(VmcsField::guest_rip) + length);
    // The emulated instruction has completed, so the STI / MOV-SS shadow it sat in is over
    // (Vol. 3C 25.4.2, 27.3.3). Left set, `sti; hlt` would keep interrupts blocked after the
    // HLT: the timer that should wake the vCPU could never be injected.
    constexpr u64 sti_or_mov_ss_blocking = vmx::blocking_by_sti | vmx::blocking_by_mov_ss;
    u64 blocking = vmx::vmcs_read(VmcsField::guest_interruptibility);
    if ((blocking & sti_or_mov_ss_blocking) != 0)
        x86::vmwrite(static_cast<u64>(VmcsField::guest_interruptibility),
                     blocking & ~sti_or_mov_ss_blocking);
}

void VmxVcpu::reset_to_wait_for_sipi() {
    // Table 9-1: real mode, caches as after INIT, segments base 0 limit 0xFFFF (CS is set by
    // the SIPI), EFER 0. CR0.NE and CR4.VMXE stay set underneath (read shadows hide them).
    const vmx::CapabilityMsrs& caps = vmx_capabilities();
    x86::vmptrld(vmcs_.value);
    vmx::VmcsWriter w;
    u64 cr0 = cr0_et | cr0_ne;
    w.write(VmcsField::guest_cr0,
            vmx::apply_fixed_bits(cr0, caps.cr0_fixed0 & ~(cr0_pe | cr0_pg), caps.cr0_fixed1));
    w.write(VmcsField::cr0_read_shadow, 0x60000010); // CD | NW | ET
    w.write(VmcsField::guest_cr4,
            vmx::apply_fixed_bits(cr4_vmxe, caps.cr4_fixed0, caps.cr4_fixed1));
    w.write(VmcsField::cr4_read_shadow, 0);
    w.write(VmcsField::guest_cr3, 0);
    w.write(VmcsField::guest_efer, 0);
    w.write(VmcsField::entry_controls,
            vmx::vmcs_read(VmcsField::entry_controls) & ~vmx::entry_ctl::ia32e_guest);
    w.write(VmcsField::guest_rflags, 0x2);
    w.write(VmcsField::guest_rip, 0xFFF0);
    w.write(VmcsField::guest_rsp, 0);
    w.write(VmcsField::guest_dr7, 0x400);
    w.write(VmcsField::guest_cs_selector, 0xF000);
    w.write(VmcsField::guest_cs_base, 0xFFFF0000);
    w.write(VmcsField::guest_cs_limit, 0xFFFF);
    w.write(VmcsField::guest_cs_access_rights, 0x9B);
    for (godwit_segment_index i : data_segments)
        write_segment(w, i, 0, 0, 0xFFFF, 0x93);
    w.write(VmcsField::guest_gdtr_base, 0);
    w.write(VmcsField::guest_gdtr_limit, 0xFFFF);
    w.write(VmcsField::guest_idtr_base, 0);
    w.write(VmcsField::guest_idtr_limit, 0xFFFF);
    w.write(VmcsField::guest_ldtr_selector, 0);
    w.write(VmcsField::guest_ldtr_base, 0);
    w.write(VmcsField::guest_ldtr_limit, 0xFFFF);
    w.write(VmcsField::guest_ldtr_access_rights, 0x82);
    w.write(VmcsField::guest_tr_selector, 0);
    w.write(VmcsField::guest_tr_base, 0);
    w.write(VmcsField::guest_tr_limit, 0xFFFF);
    w.write(VmcsField::guest_tr_access_rights, 0x8B);
    w.write(VmcsField::guest_interruptibility, 0);
    w.write(VmcsField::guest_pending_debug, 0);
    w.write(VmcsField::entry_interruption_info, 0);
    w.write(VmcsField::guest_activity_state, activity_wait_for_sipi);
    regs = GuestRegisters{};
    regs.rdx = 0x600; // EDX after INIT: family/model/stepping (Table 9-1); Linux ignores it
}

u64 VmxVcpu::guest_visible_cr0() const {
    u64 mask = read_field(static_cast<u32>(VmcsField::cr0_guest_host_mask));
    return (read_field(static_cast<u32>(VmcsField::guest_cr0)) & ~mask) |
           (read_field(static_cast<u32>(VmcsField::cr0_read_shadow)) & mask);
}

u64 VmxVcpu::guest_visible_cr4() const {
    u64 mask = read_field(static_cast<u32>(VmcsField::cr4_guest_host_mask));
    return (read_field(static_cast<u32>(VmcsField::guest_cr4)) & ~mask) |
           (read_field(static_cast<u32>(VmcsField::cr4_read_shadow)) & mask);
}

u64 VmxVcpu::read_field(u32 encoding) const {
    x86::vmptrld(vmcs_.value);
    return vmx::vmcs_read(static_cast<VmcsField>(encoding));
}

void VmxVcpu::write_field(u32 encoding, u64 value) {
    x86::vmptrld(vmcs_.value);
    x86::vmwrite(encoding, value);
}

void VmxVcpu::destroy() {
    if (vmcs_.value != 0) {
        x86::vmclear(vmcs_.value);
        free_frame(vmcs_);
        vmcs_ = PhysAddr{};
    }
}

} // namespace godwit::hv
