// A guest partition's internal state, shared by the partition table (partitions.cpp), the
// vCPU loop (vcpu_loop.cpp), the MMIO/MSR emulation (guest_mmio.cpp) and interrupt routing
// (partition_interrupts.cpp). Not part of any ABI.
#pragma once

#include "abi/godwit_hypercall.h"
#include "arch/x86/mmio_instruction.hpp"
#include "arch/x86/vmx/vmx_vcpu.hpp"
#include "ept/ept_table.hpp"
#include "kernel/spinlock.hpp"
#include "lib/types.hpp"
#include "partition/vioapic.hpp"
#include "partition/vlapic.hpp"

namespace godwit::hv::partitions {

ept::TableMemory& table_memory();

// A read the VMM completes on the next run: an IN, or an MMIO load it emulates.
enum class PendingRead : u8 { none, port, mmio };

struct Vcpu {
    VmxVcpu vmx;
    bool created;
    bool stopped; // shut down: runs no more
    PendingRead pending_read;
    u8 in_size;
    u32 in_length;
    x86::MmioInstruction mmio; // the load waiting for its value
    bool halted;               // HLT retired, waiting for an interrupt
    bool waiting_for_sipi;     // an AP before its SIPI, or after an INIT
    VirtualLapic lapic;        // under Partition::irq_lock (other vCPUs send IPIs)
    volatile bool running;     // a root thread is inside a call on this vCPU
    u64 tsc_offset;            // guest TSC = host TSC + this (VMCS TSC offset too)
    // FPU/SSE/AVX state (partition_fpu.cpp): the guest's, standard XSAVE format, current
    // whenever no run is in progress; the root's, saved during a run; the guest's XCR0.
    u8* guest_fpu;
    u8* root_fpu;
    u64 xcr0;
    // The page-modification log (Partition::pml): a 4 KiB frame of 512 guest-physical
    // addresses the CPU fills, harvested into the dirty bitmap (partition_dirty_log.cpp).
    u64* pml_log;
};

struct Partition {
    bool used;
    u32 id;
    u64 ram_bytes;
    u64 mapped_bytes;
    u32 vcpu_count;
    ept::EptTable ept{table_memory()};
    SpinLock irq_lock; // every vCPU's LAPIC and the IOAPIC
    SpinLock ept_lock; // EPT entries (map, dirty logging)
    // Dirty logging (partition_dirty_log.cpp): one bit per RAM page in 4 KiB pool frames.
    // With `pml` (the CPU has PML and EPT A/D flags, Vol. 3C 29.3.5-6) the CPU logs the first
    // write to each page whose EPT dirty flag is clear; otherwise RAM is write-protected and
    // each first write faults (EPT violation).
    bool pml;
    bool dirty_logging;
    bool dirty_by_pml; // while logging: PML (else write protection, also asked for by the VMM)
    u64* dirty_chunks[32];
    u64 flush_cpus; // CPUs that must INVEPT this partition before their next entry
    VirtualIoapic ioapic;
    bool exit_storm_logged; // run_exit_budget ran out once: logged with its exit reason
    Vcpu vcpus[GODWIT_MAX_VCPUS];
};

// Guest physical layout the hypervisor owns (the VMM's MADT and MP tables say the same).
inline constexpr u64 ioapic_base = 0xFEC00000;
// The APIC bus clock the guest's LAPIC timer counts: one tick per this many TSC cycles.
inline constexpr u32 tsc_per_bus_tick = 1;

// The partition's EPT pointer (VMCS field and INVEPT context): A/D flags on when it uses PML.
inline u64 eptp_of(const Partition& p) {
    return p.ept.eptp(p.pml);
}

// The partition `id`, or nullptr. Its owner's calls are serialized by the root driver, so
// it stays valid for a call that is not a vCPU run (those use claim).
Partition* find(u32 id);

// One call on vCPU `index` of partition `id`, for the guard's lifetime: the vCPU is marked
// running under the table lock (so destroy, which refuses while a vCPU runs, cannot free it
// meanwhile). status() is GODWIT_HC_OK when the call may go on: BAD_ARGUMENT for no such
// partition or vCPU (or, with `need_state`, a vCPU whose state was never set), BUSY when
// another root thread is in a call on it. At the end a created vCPU's VMCS is VMCLEARed, so
// the next call may come on another CPU.
class ClaimedVcpu {
  public:
    ClaimedVcpu(u32 id, u32 index, bool need_state);
    ~ClaimedVcpu();
    ClaimedVcpu(const ClaimedVcpu&) = delete;
    ClaimedVcpu& operator=(const ClaimedVcpu&) = delete;
    u64 status() const { return status_; }
    Vcpu& vcpu() { return *vcpu_; }
    Partition& partition() { return *partition_; }

  private:
    Vcpu* vcpu_ = nullptr;
    Partition* partition_ = nullptr;
    u64 status_ = GODWIT_HC_OK;
};

// The guest's TSC now (the host TSC plus the partition's offset, 0 until migration sets it).
u64 guest_tsc(const Vcpu& v);

// Interrupt routing (partition_interrupts.cpp). Caller holds p.irq_lock. Bits of `wake`
// are vCPUs that got new work and may sleep in the VMM.
void deliver(Partition& p, const ApicMessage& m, u32& wake);
void ioapic_eoi(Partition& p, u8 vector, u32& wake);
void ioapic_write(Partition& p, u32 offset, u32 value, u32& wake);
void lapic_mmio_write(Partition& p, Vcpu& v, u32 offset, u32 value, u32& wake);
bool lapic_msr_write(Partition& p, Vcpu& v, u32 msr, u64 value, u32& wake);
void set_irq(Partition& p, u32 pin, bool level, u32& wake);

// Dirty logging (partition_dirty_log.cpp). A write to a write-protected RAM page: true when
// it was logged and the page made writable (the guest retries the write).
bool log_dirty_write(Partition& p, u64 gpa);
void flush_ept_if_needed(Partition& p); // before a VM entry on this CPU
// Around each VM entry of p's vCPUs on this CPU: announce the entry (then flush if asked),
// and its end right after the exit. The dirty log waits for CPUs inside p after a flush.
void begin_guest_entry(Partition& p);
void end_guest_entry();
void free_dirty_log(Partition& p);
// Moves the addresses in v's page-modification log into the dirty bitmap (dropped while
// logging is off) and empties the log. On a PML-full exit and before every return to the
// root, with v's VMCS current.
void harvest_pml(Partition& p, Vcpu& v);

// Guest FPU state (partition_fpu.cpp). fpu_probe reads the CPU's XSAVE layout once (before
// the first vCPU); fpu_create gives a vCPU its areas in the reset state (false: no memory).
void fpu_probe();
bool fpu_create(Vcpu& v);
void fpu_destroy(Vcpu& v);
// For its lifetime the CPU holds the guest's FPU state and XCR0; the root's come back at
// the end (the whole of a run loop that enters the guest).
class GuestFpuLoaded {
  public:
    explicit GuestFpuLoaded(Vcpu& v);
    ~GuestFpuLoaded();
    GuestFpuLoaded(const GuestFpuLoaded&) = delete;
    GuestFpuLoaded& operator=(const GuestFpuLoaded&) = delete;

  private:
    Vcpu& v_;
    u64 root_xcr0_ = 0;
    u64 switch_xcr0_ = 0;
};
// XSETBV exit: the guest's XCR0 is set (and live) or it gets #GP/#UD.
void emulate_xsetbv(Vcpu& v, u32 instruction_length);
// CPUID leaves 7 and 0xD as guests see them: only the XSAVE components they may enable.
void fpu_patch_cpuid(u32 leaf, u32 subleaf, GuestRegisters& r);

// Emulation of exits the hypervisor handles for guests (guest_mmio.cpp).
enum class Emulated : u8 {
    done,        // handled, the guest continues
    to_vmm_read, // an MMIO load for the VMM: `run` filled, completes on the next run
    to_vmm,      // an MMIO store for the VMM: `run` filled, already retired
    failed,      // could not fetch/decode: the VMM sees GODWIT_EXIT_MEMORY
    not_mine,    // not an APIC MSR: the generic MSR handler decides
};
Emulated emulate_ept_violation(Partition& p, Vcpu& v, u64 gpa, u64 qualification,
                               godwit_hc_vcpu_run& run, u32& wake);
Emulated emulate_apic_msr(Partition& p, Vcpu& v, bool write, u32 instruction_length, u32& wake);
// Puts the value of a completed MMIO load (from the VMM) into the guest's register.
void complete_mmio_load(Vcpu& v, u64 value);

} // namespace godwit::hv::partitions
