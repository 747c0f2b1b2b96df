// GODWIT_HC_VCPU_RUN: the world switch from the root into a guest vCPU and the exit loop.
// Before every entry the vCPU's virtual LAPIC decides what to deliver (INIT, SIPI, the
// highest-priority interrupt or an interrupt window); the hypervisor handles CPUID, MSRs,
// APIC/IOAPIC accesses, HLT with something to deliver and timer expiries itself and returns
// to the VMM for port I/O, other MMIO, idleness, shutdown and root interrupts.
#include "arch/x86/intrinsics.hpp"
#include "arch/x86/vmx/vmcs_fields.hpp"
#include "arch/x86/vmx/vmx_event.hpp"
#include "arch/x86/vmx/vmx_exit.hpp"
#include "arch/x86/vmx/vmx_exit_handlers.hpp"
#include "kernel/console.hpp"
#include "kernel/percpu.hpp"
#include "partition/partition.hpp"
#include "partition/partitions.hpp"
#include "platform/lapic.hpp"
#include "platform/tsc_calibration.hpp"
#include "root/root_nmi.hpp"

namespace godwit::hv::partitions {
namespace {

using vmx::ExitReason;
using vmx::VmcsField;

enum class Next : u8 { enter, idle };

// Exits the hypervisor handles itself in one run call before it returns to the root anyway.
// A pending root interrupt only ends the loop through an external-interrupt exit, and some
// exits outrank it (a zero VMX-preemption timer and interrupt-window exits, Vol. 3C 26.7.4
// and 25.2): a guest that keeps producing those would otherwise hold the CPU for good.
constexpr u32 run_exit_budget = 4096;

// The root's interrupts end a guest run through external-interrupt exiting, but Bochs 2.7 only
// re-evaluates interrupt masking at VM entry when RFLAGS.IF changes: a guest entered with
// IF = 0 (as the hypervisor runs) never exits for the root's interrupts, and a guest that does
// not exit on its own then holds its CPU for good (the root's timer stopped on that CPU and
// RCU reported a stall). So a run also looks at the physical APIC every slice (the VMX-
// preemption timer) and ends when it holds an interrupt for the root: an exit per slice on
// hardware, where the interrupt would have ended the run already.
constexpr u64 run_slice_per_second = 1000; // 1 ms

u64 run_slice_cycles() {
    return host_tsc_hz() / run_slice_per_second; // 0 (no slices) before the TSC is known
}

// What the vCPU does next, from its APIC's state (caller holds nothing; takes irq_lock).
Next prepare_entry(Partition& p, Vcpu& v, godwit_hc_vcpu_run& out, u64 slice_end) {
    SpinLockGuard guard(p.irq_lock);
    VmxVcpu& g = v.vmx;
    u64 now = guest_tsc(v);
    if (v.lapic.take_init()) {
        // INIT: the architectural INIT state, then wait for a SIPI (Vol. 3A 9.1, 10.4.7.3).
        g.reset_to_wait_for_sipi();
        v.lapic.init();
        v.waiting_for_sipi = true;
        v.halted = false;
    }
    u8 vector = 0;
    if (!v.waiting_for_sipi) {
        (void)v.lapic.take_sipi(vector); // a running CPU ignores SIPIs (the 2nd of INIT-SIPI-SIPI)
    } else {
        if (!v.lapic.take_sipi(vector)) {
            out.exit_reason = GODWIT_EXIT_HLT;
            out.wake_tsc = 0; // only an IPI from another vCPU starts it
            return Next::idle;
        }
        g.start_at_sipi(vector);
        v.waiting_for_sipi = false;
        v.halted = false;
    }
    bool delivered = false;
    if (!g.injection_pending()) {
        if (vmx::nmi_injectable(g.read(VmcsField::guest_interruptibility)) && v.lapic.take_nmi()) {
            // An NMI the guest sent itself or got from its IOAPIC; one that finds the guest
            // in its NMI handler or an STI/MOV-SS shadow waits for a later entry (injecting
            // it then would fail the entry, Vol. 3C 26.3.1.5).
            g.write(VmcsField::entry_interruption_info, vmx::nmi_injection);
            delivered = true;
        } else if (int vector = v.lapic.pending_vector(now); vector >= 0) {
            if (g.interrupts_open()) {
                g.inject_interrupt(static_cast<u8>(vector));
                v.lapic.acknowledge(static_cast<u8>(vector));
                delivered = true;
            }
            // Closed (IF = 0 or STI/MOV-SS blocking): exit as soon as it opens.
            g.request_interrupt_window(!delivered);
        } else {
            g.request_interrupt_window(false);
        }
    }
    if (v.halted) {
        if (!delivered) { // HLT wakes only for what it can take (Vol. 3A 8.10.2)
            out.exit_reason = GODWIT_EXIT_HLT;
            // The VMM sleeps on the root's TSC: the guest's deadline less its TSC offset.
            u64 wake = v.lapic.timer_deadline();
            out.wake_tsc = wake != 0 ? wake - v.tsc_offset : 0;
            return Next::idle;
        }
        v.halted = false;
    }
    // The VMX-preemption timer fires for the guest's LAPIC timer or at the end of the slice,
    // whichever comes first.
    u64 deadline = v.lapic.timer_deadline();
    u64 cycles = deadline == 0 ? ~0ull : deadline > now ? deadline - now : 0;
    if (slice_end != 0) {
        u64 host_now = x86::rdtsc();
        u64 slice_left = slice_end > host_now ? slice_end - host_now : 0;
        cycles = slice_left < cycles ? slice_left : cycles;
    }
    g.set_preemption_timer(cycles != ~0ull, cycles);
    return Next::enter;
}

// CPUID as this vCPU of this partition sees it: its APIC ID, and the APIC features the
// virtual LAPIC provides whatever the host has (x2APIC, TSC-deadline).
void patch_cpuid(Vcpu& v, u32 index, u32 leaf) {
    GuestRegisters& r = v.vmx.regs;
    if (leaf == 1) {
        r.rbx = (r.rbx & 0x00FFFFFFu) | (u64{index} << 24);
        r.rcx |= (1u << 21) | (1u << 24); // x2APIC, TSC-deadline
        r.rdx |= 1u << 9;                 // APIC
    } else if (leaf == 0xB) {
        r.rdx = index; // x2APIC ID
    }
}

void complete_port_read(Vcpu& v, u64 value) {
    GuestRegisters& r = v.vmx.regs;
    u64 mask = v.in_size == 4 ? 0xFFFFFFFFull : (1ull << (8 * v.in_size)) - 1;
    r.rax = v.in_size == 4 ? (value & mask) : ((r.rax & ~mask) | (value & mask));
    v.vmx.skip_instruction(v.in_length);
}

// An EPT violation or a full PML log met in an IRET that had just ended the guest's (virtual)
// NMI blocking: the IRET is retried, so the blocking must be back in place first (Vol. 3C
// 28.2.1 Table 28-7 bit 12, 27.3.4). Undefined when the exit interrupted an event delivery.
void reblock_nmis_after_iret(VmxVcpu& g, const VmExit& e) {
    bool ept = e.reason == static_cast<u32>(ExitReason::ept_violation) ||
               e.reason == static_cast<u32>(ExitReason::pml_full);
    if (!ept || ((e.qualification >> 12) & 1) == 0 ||
        (g.read(VmcsField::idt_vectoring_info) & vmx::event_valid) != 0)
        return;
    g.write(VmcsField::guest_interruptibility,
            g.read(VmcsField::guest_interruptibility) | vmx::blocking_by_nmi);
}

// One exit; true when the VMM must see it (`out` filled).
bool handle(Partition& p, Vcpu& v, u32 index, const VmExit& e, godwit_hc_vcpu_run& out, u32& wake) {
    VmxVcpu& g = v.vmx;
    out.rip = e.guest_rip;
    switch (static_cast<ExitReason>(e.reason)) {
    case ExitReason::external_interrupt:
        out.exit_reason = GODWIT_EXIT_INTERRUPTED; // the root takes it when it resumes
        return true;
    case ExitReason::exception_or_nmi:
        // The exception bitmap is empty: only NMIs exit here, and they are the root's.
        if (vmx::is_nmi_exit(static_cast<u32>(g.read(VmcsField::exit_interruption_info)))) {
            note_root_nmi_from_guest(p.id, index);
            out.exit_reason = GODWIT_EXIT_INTERRUPTED;
            return true;
        }
        break;
    case ExitReason::interrupt_window:
    case ExitReason::preemption_timer:
        return false; // prepare_entry delivers what is now due
    case ExitReason::pml_full:
        harvest_pml(p, v); // the write that found the log full is retried (Vol. 3C 29.3.6)
        return false;
    case ExitReason::io_instruction: {
        vmx::IoAccess io = vmx::decode_io(e.qualification);
        if (io.string) { // INS/OUTS: not emulated; the guest cannot continue
            out.exit_reason = GODWIT_EXIT_SHUTDOWN;
            out.qualification = e.qualification;
            v.stopped = true;
            log(LogLevel::warn, "partition %u vCPU %u stopped: string port I/O (port 0x%x)", p.id,
                index, io.port);
            return true;
        }
        out.exit_reason = GODWIT_EXIT_IO;
        out.port = io.port;
        out.size = io.size;
        out.direction = io.in ? 1 : 0;
        if (io.in) {
            v.pending_read = PendingRead::port;
            v.in_size = io.size;
            v.in_length = e.instruction_length;
        } else {
            u64 mask = io.size == 4 ? 0xFFFFFFFFull : (1ull << (8 * io.size)) - 1;
            out.value = g.regs.rax & mask;
            g.skip_instruction(e.instruction_length);
        }
        return true;
    }
    case ExitReason::hlt:
        g.skip_instruction(e.instruction_length);
        v.halted = true; // prepare_entry wakes it or reports it idle
        return false;
    case ExitReason::ept_violation:
        if ((e.qualification & 2) != 0 && log_dirty_write(p, e.guest_physical))
            return false; // logged; the page is writable again
        switch (emulate_ept_violation(p, v, e.guest_physical, e.qualification, out, wake)) {
        case Emulated::done:
            return false;
        case Emulated::to_vmm_read:
            v.pending_read = PendingRead::mmio;
            return true;
        case Emulated::to_vmm:
            return true;
        default:
            // Not RAM and not an instruction the hypervisor emulates: the VMM decides (the VM
            // stops). The instruction is not retired.
            out.exit_reason = GODWIT_EXIT_MEMORY;
            out.gpa = e.guest_physical;
            out.qualification = e.qualification;
            return true;
        }
    case ExitReason::rdmsr:
    case ExitReason::wrmsr:
        if (emulate_apic_msr(p, v, e.reason == static_cast<u32>(ExitReason::wrmsr),
                             e.instruction_length, wake) != Emulated::not_mine)
            return false;
        break;
    case ExitReason::vmcall: // no hypercalls for guests: #UD, as on a CPU without them
        g.inject_ud();
        return false;
    case ExitReason::cpuid: {
        u32 leaf = static_cast<u32>(g.regs.rax), subleaf = static_cast<u32>(g.regs.rcx);
        handle_exit(g, e);
        patch_cpuid(v, index, leaf);
        fpu_patch_cpuid(leaf, subleaf, g.regs);
        return false;
    }
    case ExitReason::xsetbv:
        emulate_xsetbv(v, e.instruction_length);
        return false;
    default:
        break;
    }
    ExitOutcome o = handle_exit(g, e);
    if (o.action == ExitAction::resume)
        return false;
    out.exit_reason = GODWIT_EXIT_SHUTDOWN;
    out.qualification = e.reason;
    v.stopped = true;
    log(LogLevel::warn, "partition %u vCPU %u stopped: %s (exit %u at rip 0x%lx)", p.id, index,
        o.why != nullptr ? o.why : "unhandled exit", e.reason, e.guest_rip);
    return true;
}

// Enters the guest until an exit the VMM must see (`out` filled). The CPU holds the guest's
// FPU state and XCR0 for the whole loop (partition_fpu.cpp) and the root's again after it.
void run_loop(Partition& part, Vcpu& v, u32 index, godwit_hc_vcpu_run& out, u32& wake, u32 budget) {
    Partition* p = &part;
    u32 id = p->id;
    VmxVcpu& g = v.vmx;
    GuestFpuLoaded fpu(v);
    const u64 slice = run_slice_cycles();
    u64 slice_end = slice != 0 ? x86::rdtsc() + slice : 0;
    for (bool done = false; !done;) {
        if (prepare_entry(*p, v, out, slice_end) == Next::idle)
            break;
        begin_guest_entry(*p);
        VmExit e = g.run();
        end_guest_entry();
        if (e.entry_failed) {
            out.exit_reason = GODWIT_EXIT_SHUTDOWN;
            out.qualification = e.instruction_error != 0 ? e.instruction_error : e.reason;
            v.stopped = true;
            log(LogLevel::warn, "partition %u vCPU %u: VM entry failed (%s)", id, index,
                e.instruction_error != 0 ? vmx::vm_instruction_error_text(e.instruction_error)
                                         : vmx::exit_reason_name(e.reason));
            break;
        }
        reblock_nmis_after_iret(g, e);
        g.requeue_interrupted_event();
        done = handle(*p, v, index, e, out, wake);
        if (!done && this_cpu().root_nmi_pending) {
            // An NMI hit the hypervisor while it handled this exit: the root's, at once.
            out.exit_reason = GODWIT_EXIT_INTERRUPTED;
            out.rip = e.guest_rip;
            done = true;
        }
        if (!done && slice != 0 && x86::rdtsc() >= slice_end) {
            if (lapic_interrupt_pending()) {
                out.exit_reason = GODWIT_EXIT_INTERRUPTED; // as an external-interrupt exit
                out.rip = e.guest_rip;
                done = true;
            } else {
                slice_end = x86::rdtsc() + slice;
            }
        }
        if (!done && (wake & ~(1u << index)) != 0) {
            out.exit_reason = GODWIT_EXIT_INTERRUPTED; // the VMM wakes the other vCPUs
            out.rip = e.guest_rip;
            done = true;
        }
        if (!done && --budget == 0) {
            if (!p->exit_storm_logged) {
                p->exit_storm_logged = true;
                log(LogLevel::warn,
                    "partition %u vCPU %u: %u exits in one run without the VMM (last: %s at rip "
                    "0x%lx); returning to the root between such runs",
                    id, index, run_exit_budget, vmx::exit_reason_name(e.reason), e.guest_rip);
            }
            out.exit_reason = GODWIT_EXIT_INTERRUPTED;
            out.rip = e.guest_rip;
            done = true;
        }
    }
}

} // namespace

u64 run(u32 id, u32 index, godwit_hc_vcpu_run& out) {
    ClaimedVcpu call(id, index, true); // VMCLEARed at the end: the next run may be elsewhere
    if (call.status() != GODWIT_HC_OK)
        return call.status();
    Vcpu& v = call.vcpu();
    Partition* p = &call.partition();
    u32 flags = out.flags;
    u64 read_value = out.read_value;
    out = godwit_hc_vcpu_run{};
    VmxVcpu& g = v.vmx;
    g.write_host_state(); // this CPU's GDT, TSS, GS base
    if (v.pending_read != PendingRead::none) {
        if ((flags & GODWIT_RUN_COMPLETE_READ) == 0)
            return GODWIT_HC_BAD_ARGUMENT; // the last read needs its value first
        if (v.pending_read == PendingRead::port)
            complete_port_read(v, read_value);
        else
            complete_mmio_load(v, read_value);
        v.pending_read = PendingRead::none;
    }
    u32 wake = 0;
    if ((flags & GODWIT_RUN_NO_ENTRY) != 0)
        out.exit_reason = GODWIT_EXIT_INTERRUPTED;
    if (!v.stopped && (flags & GODWIT_RUN_NO_ENTRY) == 0)
        run_loop(*p, v, index, out, wake, run_exit_budget);
    // Before the root runs (and may fetch the dirty log, or pause the VM for the last pass):
    // every write this vCPU logged is in the bitmap.
    harvest_pml(*p, v);
    if (v.stopped && out.exit_reason == 0)
        out.exit_reason = GODWIT_EXIT_SHUTDOWN;
    out.wake_mask = wake & ~(1u << index);
    return GODWIT_HC_OK;
}

} // namespace godwit::hv::partitions
