// The root partition's VM exits. The root owns the machine's devices, so almost nothing
// exits: CPUID, MSRs outside the bitmap's ranges, CR0.NE/CR4.VMXE writes, XSETBV, VMCALL
// (hypercalls), INIT/SIPI and writes to the local APIC's ICR (root SMP, root_apic.hpp), VMX
// instructions (no nested VT-x), and EPT violations, which otherwise only happen when the
// root touches memory it does not own.
#include "abi/godwit_hypercall.h"
#include "arch/x86/intrinsics.hpp"
#include "arch/x86/vmx/vmcs_fields.hpp"
#include "arch/x86/vmx/vmx_event.hpp"
#include "arch/x86/vmx/vmx_exit.hpp"
#include "arch/x86/vmx/vmx_exit_handlers.hpp"
#include "arch/x86/vmx/vmx_state.hpp"
#include "arch/x86/xsave_area.hpp"
#include "hypercall/hypercall.hpp"
#include "kernel/boot_info.hpp"
#include "kernel/console.hpp"
#include "kernel/end_run.hpp"
#include "kernel/percpu.hpp"
#include "memory/frame_allocator.hpp"
#include "partition/partitions.hpp"
#include "platform/cmdline.hpp"
#include "root/root_apic.hpp"
#include "root/root_nmi.hpp"
#include "root/root_partition.hpp"

extern "C" void* memcpy(void*, const void*, godwit::hv::usize);

namespace godwit::hv {
namespace {

using vmx::ExitReason;
using vmx::VmcsField;

u8 guest_cpl(VmxVcpu& v) {
    return static_cast<u8>((v.read(VmcsField::guest_ss_access_rights) >> 5) & 3);
}

class RootHypercallHost final : public hypercall::HypercallHost {
  public:
    bool caller_owns(u64 gpa, u64 length) const override {
        const RootPartition& r = root_partition();
        return root::buffer_in_ram(r.e820, r.e820_count, gpa, length);
    }
    void copy_to_caller(u64 gpa, const void* source, u64 length) override {
        // The root's memory is identity-mapped in the hypervisor as well.
        memcpy(reinterpret_cast<void*>(gpa), source, length);
    }
    void version(godwit_hc_version& out) const override {
        const vmx::Features& f = vmx_features();
        out.abi_version = GODWIT_HC_ABI_VERSION;
        out.cpu_count = cpu_count();
        out.vmx_features =
            (f.ept ? GODWIT_VMX_EPT : 0) | (f.vpid ? GODWIT_VMX_VPID : 0) |
            (f.unrestricted_guest ? GODWIT_VMX_UNRESTRICTED_GUEST : 0) |
            (f.ept_accessed_dirty ? GODWIT_VMX_EPT_AD : 0) | (f.pml ? GODWIT_VMX_PML : 0) |
            (f.preemption_timer ? GODWIT_VMX_PREEMPTION_TIMER : 0) |
            (f.ept_1g_pages ? GODWIT_VMX_EPT_1G : 0) | (f.ept_2m_pages ? GODWIT_VMX_EPT_2M : 0) |
            (((x86::cpuid(1).ecx >> 21) & 1) ? GODWIT_VMX_X2APIC : 0);
        out.vmx_basic = vmx_capabilities().basic;
        const char* build = GODWIT_VERSION;
        u32 i = 0;
        for (; build[i] != '\0' && i + 1 < sizeof(out.build); ++i)
            out.build[i] = build[i];
        out.build[i] = '\0';
    }
    u32 cpu_count() const override { return hv::cpu_count(); }
    void cpu(u32 index, godwit_hc_cpu& out) const override {
        PerCpu& c = hv::cpu(index);
        out.index = c.index;
        out.apic_id = c.apic_id;
        out.flags = (c.online ? 1u : 0u) | (vmx_cpu_on(index) ? 2u : 0u) | (c.runs_root ? 4u : 0u);
        out.exits = __atomic_load_n(&c.exits, __ATOMIC_RELAXED);
    }
    void memory_stats(godwit_hc_memory_stats& out) const override {
        const RootPartition& r = root_partition();
        FrameStats s = frame_stats();
        out.total_bytes = r.ram_total;
        out.hypervisor_bytes = r.hypervisor_bytes;
        out.hypervisor_free_bytes = s.free_frames * page_size;
        out.root_bytes = r.root_ram;
        out.guest_bytes = partitions::guest_bytes();
    }
    void console(const char*& ring, u64& size, u64& written) const override {
        console_ring(ring, size, written);
    }
    void copy_from_caller(u64 gpa, void* destination, u64 length) const override {
        memcpy(destination, reinterpret_cast<const void*>(gpa), length);
    }
    u64 partition_create(u64 ram_bytes, u32 vcpus, u32& id) override {
        return partitions::create(ram_bytes, vcpus, id);
    }
    u64 partition_destroy(u32 id) override { return partitions::destroy(id); }
    u64 partition_map(u32 id, u64 guest_gpa, const u64* frames, u32 count) override {
        return partitions::map(id, guest_gpa, frames, count);
    }
    u64 vcpu_set_state(u32 id, u32 vcpu, const godwit_hc_vcpu_state& state) override {
        return partitions::set_state(id, vcpu, state);
    }
    u64 vcpu_run(u32 id, u32 vcpu, godwit_hc_vcpu_run& run) override {
        return partitions::run(id, vcpu, run);
    }
    u64 vcpu_get_state(u32 id, u32 vcpu, godwit_hc_vcpu_state& state) override {
        return partitions::get_state(id, vcpu, state);
    }
    u64 partition_irq(u32 id, u32 pin, bool level, u32& wake) override {
        return partitions::irq(id, pin, level, wake);
    }
    u64 dirty_log(u32 id, u32 op) override { return partitions::dirty_log(id, op); }
    u64 dirty_fetch(u32 id, u64 first_page, u32 pages, u64 bits_gpa) override {
        struct Out {
            RootHypercallHost* host;
            u64 gpa;
        } out{this, bits_gpa};
        return partitions::dirty_fetch(
            id, first_page, pages,
            [](void* context, u64 word, u64 bits) {
                Out& o = *static_cast<Out*>(context);
                o.host->copy_to_caller(o.gpa + word * 8, &bits, 8);
            },
            &out);
    }
    u64 vcpu_get_extra(u32 id, u32 vcpu, godwit_hc_vcpu_extra& extra) override {
        return partitions::get_extra(id, vcpu, extra);
    }
    u64 vcpu_set_extra(u32 id, u32 vcpu, const godwit_hc_vcpu_extra& extra) override {
        return partitions::set_extra(id, vcpu, extra);
    }
    u64 vcpu_get_fpu(u32 id, u32 vcpu, godwit_hc_vcpu_fpu& fpu) override {
        return partitions::get_fpu(id, vcpu, fpu);
    }
    u64 vcpu_set_fpu(u32 id, u32 vcpu, const godwit_hc_vcpu_fpu& fpu) override {
        return partitions::set_fpu(id, vcpu, fpu);
    }
    u64 irqchip_get(u32 id, godwit_hc_irqchip& chip) override {
        return partitions::irqchip_get(id, chip);
    }
    u64 irqchip_set(u32 id, const godwit_hc_irqchip& chip) override {
        return partitions::irqchip_set(id, chip);
    }
};

RootHypercallHost hypercall_host;

void handle_vmcall(VmxVcpu& v, const VmExit& e) {
    hypercall::Call call{v.regs.rax, v.regs.rdi, v.regs.rsi, v.regs.rdx, guest_cpl(v), true};
    hypercall::Result r = hypercall::dispatch(call, hypercall_host);
    v.regs.rax = r.status;
    v.regs.rdx = r.value;
    v.skip_instruction(e.instruction_length);
}

// XSETBV (Vol. 1, 13.3; Vol. 2B XSETBV): only XCR0, from CPL 0, with a value the CPU
// accepts — checked here, because executing a bad one would fault the hypervisor.
void handle_xsetbv(VmxVcpu& v, const VmExit& e) {
    constexpr u64 cr4_osxsave = 1ull << 18;
    if ((v.guest_visible_cr4() & cr4_osxsave) == 0) {
        v.inject_ud();
        return;
    }
    u32 index = static_cast<u32>(v.regs.rcx);
    u64 value = (v.regs.rdx << 32) | (v.regs.rax & 0xFFFFFFFF);
    x86::CpuidResult leaf = x86::cpuid(0xD, 0);
    u64 supported = (u64{leaf.edx} << 32) | leaf.eax;
    if (guest_cpl(v) != 0 || index != 0 || !x86::xcr0_valid(value, supported)) {
        v.inject_gp();
        return;
    }
    x86::xsetbv(0, value);
    v.skip_instruction(e.instruction_length);
}

// The root touched memory outside its EPT: hypervisor memory or beyond the map. The access
// fails with #GP(0) (Linux's exception fixups turn that into -EFAULT for /dev/mem and
// copy_from_kernel_nofault); the hypervisor logs the first ones and counts all.
void handle_ept_violation(VmxVcpu& v, const VmExit& e) {
    vmx::EptViolation q = vmx::decode_ept_violation(e.qualification);
    u64 n = __atomic_add_fetch(&root_partition().refused_accesses, 1, __ATOMIC_RELAXED);
    if (n <= 16 || (n & (n - 1)) == 0) {
        log(LogLevel::warn,
            "root: refused %s of 0x%lx (not root memory) at rip 0x%lx, cpl %u [%lu refused]",
            q.write     ? "write"
            : q.execute ? "instruction fetch"
                        : "read",
            e.guest_physical, e.guest_rip, guest_cpl(v), n);
    }
    if ((e.qualification >> 12) & 1) {
        // The access was in an IRET that unblocked NMIs: block them again (Vol. 3C 28.2.3).
        u64 interruptibility = v.read(VmcsField::guest_interruptibility);
        v.write(VmcsField::guest_interruptibility, interruptibility | vmx::blocking_by_nmi);
    }
    v.inject_gp();
}

bool is_vmx_instruction(u32 reason) {
    return (reason >= 19 && reason <= 27) || reason == 50 || reason == 53 || reason == 59;
}

[[noreturn]] void root_failed(VmxVcpu& v, const VmExit& e, const char* why) {
    console_printf("godwit: the root partition stopped on cpu %u: %s (exit %u %s, rip 0x%lx, "
                   "qualification 0x%lx)\n",
                   this_cpu().index, why, e.reason, vmx::exit_reason_name(e.reason),
                   v.read(VmcsField::guest_rip), e.qualification);
    if (e.entry_failed && e.instruction_error != 0)
        console_printf("godwit: VM-instruction error %u: %s\n", e.instruction_error,
                       vmx::vm_instruction_error_text(e.instruction_error));
    if (e.entry_failed && e.reason == 33) { // invalid guest state: show what VM entry saw
        console_printf("godwit: guest CR0 %lx CR4 %lx EFER %lx entry controls %lx activity %lu "
                       "interruptibility %lx\n",
                       v.read(VmcsField::guest_cr0), v.read(VmcsField::guest_cr4),
                       v.read(VmcsField::guest_efer), v.read(VmcsField::entry_controls),
                       v.read(VmcsField::guest_activity_state),
                       v.read(VmcsField::guest_interruptibility));
        console_printf("godwit: guest CS %lx base %lx limit %lx rights %lx, SS rights %lx, "
                       "TR rights %lx\n",
                       v.read(VmcsField::guest_cs_selector), v.read(VmcsField::guest_cs_base),
                       v.read(VmcsField::guest_cs_limit), v.read(VmcsField::guest_cs_access_rights),
                       v.read(VmcsField::guest_ss_access_rights),
                       v.read(VmcsField::guest_tr_access_rights));
    }
    end_run("root partition stopped");
}

} // namespace

[[noreturn]] void run_root_vcpu(VmxVcpu& v) {
    PerCpu& self = this_cpu();
    self.runs_root = true;
    // trace_root_exits=N on the hypervisor command line: log each CPU's first N exits.
    u64 trace = 0;
    char value[24];
    if (cmdline_value(boot_info().cmdline, "trace_root_exits", value, sizeof(value)))
        parse_u64(value, trace);
    for (;;) {
        inject_pending_root_nmi(v);
        VmExit e = v.run();
        u64 n = __atomic_add_fetch(&self.exits, 1, __ATOMIC_RELAXED);
        if (n <= trace)
            log(LogLevel::info,
                "root exit %lu: %s (%u) rip 0x%lx qualification 0x%lx rax 0x%lx "
                "rcx 0x%lx",
                n, vmx::exit_reason_name(e.reason), e.reason, e.guest_rip, e.qualification,
                v.regs.rax, v.regs.rcx);
        if (e.entry_failed)
            root_failed(v, e, "VM entry failed");
        switch (static_cast<ExitReason>(e.reason)) {
        case ExitReason::vmcall:
            handle_vmcall(v, e);
            continue;
        case ExitReason::xsetbv:
            handle_xsetbv(v, e);
            continue;
        case ExitReason::ept_violation:
            if (!root_apic_ept_violation(v, e))
                handle_ept_violation(v, e);
            continue;
        case ExitReason::wrmsr:
            if (root_apic_wrmsr(v, e))
                continue;
            break;
        case ExitReason::init_signal:
            root_apic_init_exit(v);
            continue;
        case ExitReason::startup_ipi:
            root_apic_sipi_exit(v, e);
            continue;
        default:
            break;
        }
        if (is_vmx_instruction(e.reason)) {
            v.inject_ud(); // no nested VT-x: CPUID.1:ECX.VMX is clear for the root
            continue;
        }
        if (e.reason == 13) { // INVD: never drop dirty lines the hypervisor owns; write back
            x86::wbinvd();
            v.skip_instruction(e.instruction_length);
            continue;
        }
        ExitOutcome o = handle_exit(v, e);
        bool msr = e.reason == static_cast<u32>(ExitReason::rdmsr) ||
                   e.reason == static_cast<u32>(ExitReason::wrmsr);
        if (msr && (v.read(VmcsField::entry_interruption_info) >> 31) != 0) {
            // An MSR outside the bitmap's ranges that Godwit does not implement: #GP, as on
            // a CPU without it. Say which ones the root tries (Linux probes a few).
            static u32 logged = 0;
            if (__atomic_fetch_add(&logged, 1, __ATOMIC_RELAXED) < 32)
                log(LogLevel::info, "root: %s of unimplemented MSR 0x%lx at rip 0x%lx: #GP",
                    e.reason == static_cast<u32>(ExitReason::rdmsr) ? "rdmsr" : "wrmsr",
                    v.regs.rcx & 0xFFFFFFFF, e.guest_rip);
        }
        if (o.action == ExitAction::resume)
            continue;
        root_failed(v, e, o.action == ExitAction::stop_guest ? o.why : "unexpected VM exit");
    }
}

} // namespace godwit::hv
