#include "partition/partitions.hpp"

#include "arch/x86/intrinsics.hpp"
#include "arch/x86/vmx/vmcs_fields.hpp"
#include "arch/x86/vmx/vmx_exit.hpp"
#include "arch/x86/vmx/vmx_exit_handlers.hpp"
#include "arch/x86/vmx/vmx_state.hpp"
#include "arch/x86/vmx/vmx_vcpu.hpp"
#include "ept/ept_table.hpp"
#include "kernel/console.hpp"
#include "kernel/spinlock.hpp"
#include "memory/frame_allocator.hpp"
#include "memory/pool_table_memory.hpp"

namespace godwit::hv::partitions {
namespace {

using vmx::ExitReason;
using vmx::VmcsField;

PoolTableMemory tables;

struct Vcpu {
    VmxVcpu vmx;
    bool created;
    bool stopped; // shut down: runs no more
    bool pending_in;
    u8 in_size;
    u32 in_length;
    volatile bool running;
};

struct Partition {
    bool used;
    u64 ram_bytes;
    u64 mapped_bytes;
    u32 vcpu_count;
    ept::EptTable ept{tables};
    Vcpu vcpus[GODWIT_MAX_VCPUS];
};

Partition table[GODWIT_MAX_PARTITIONS];
SpinLock lock;

// VPIDs: 1 is the root's; partition p's vCPU v gets 2 + p * max_vcpus + v.
u16 vpid_of(u32 id, u32 vcpu) {
    return static_cast<u16>(2 + id * GODWIT_MAX_VCPUS + vcpu);
}

void invalidate(Partition& p) {
    const vmx::Features& f = vmx_features();
    x86::invept(f.invept_single ? 1 : 2, x86::InveptDescriptor{p.ept.eptp(false), 0});
}

Partition* lookup(u32 id) {
    return id < GODWIT_MAX_PARTITIONS && table[id].used ? &table[id] : nullptr;
}

bool ensure_vcpu(u32 id, Partition& p, u32 index) {
    Vcpu& v = p.vcpus[index];
    if (v.created)
        return true;
    VcpuConfig c{};
    c.mode = GuestMode::real_mode;
    c.eptp = p.ept.eptp(false);
    c.vpid = vpid_of(id, index);
    c.exit_on_interrupts = true;
    const char* error = nullptr;
    if (!v.vmx.create(c, &error)) {
        log(LogLevel::error, "partition %u: vCPU %u: %s", id, index, error);
        return false;
    }
    v.created = true;
    return true;
}

} // namespace

u64 create(u64 ram_bytes, u32 vcpus, u32& id) {
    SpinLockGuard guard(lock);
    for (u32 i = 0; i < GODWIT_MAX_PARTITIONS; ++i) {
        Partition& p = table[i];
        if (p.used)
            continue;
        if (p.ept.init() != ept::Status::ok)
            return GODWIT_HC_NO_MEMORY;
        p.used = true;
        p.ram_bytes = ram_bytes;
        p.mapped_bytes = 0;
        p.vcpu_count = vcpus;
        for (Vcpu& v : p.vcpus)
            v = Vcpu{};
        id = i;
        log(LogLevel::info, "partition %u: created (%lu MiB, %u vCPUs)", i, ram_bytes >> 20, vcpus);
        return GODWIT_HC_OK;
    }
    return GODWIT_HC_BUSY;
}

u64 destroy(u32 id) {
    SpinLockGuard guard(lock);
    Partition* p = lookup(id);
    if (p == nullptr)
        return GODWIT_HC_BAD_ARGUMENT;
    for (Vcpu& v : p->vcpus) {
        if (v.running)
            return GODWIT_HC_BUSY;
    }
    for (Vcpu& v : p->vcpus) {
        if (v.created)
            v.vmx.destroy(); // VMCLEAR and free the VMCS
        v = Vcpu{};
    }
    invalidate(*p);
    p->ept.destroy(); // every table page back to the pool; the RAM pages are the root's
    log(LogLevel::info, "partition %u: destroyed (%lu MiB unmapped)", id, p->mapped_bytes >> 20);
    p->used = false;
    p->mapped_bytes = 0;
    return GODWIT_HC_OK;
}

u64 map(u32 id, u64 guest_gpa, const u64* frames, u32 count) {
    SpinLockGuard guard(lock);
    Partition* p = lookup(id);
    if (p == nullptr)
        return GODWIT_HC_BAD_ARGUMENT;
    if (guest_gpa + u64{count} * page_size > p->ram_bytes ||
        guest_gpa + u64{count} * page_size < guest_gpa)
        return GODWIT_HC_BAD_ARGUMENT; // beyond the RAM size the partition was created with
    for (u32 i = 0; i < count; ++i) {
        u64 gpa = guest_gpa + u64{i} * page_size;
        u64 hpa = 0;
        u8 access = 0;
        ept::PageSize size{};
        if (p->ept.translate(gpa, hpa, access, size))
            p->ept.unmap(gpa); // remapping a page replaces it
        else
            p->mapped_bytes += page_size;
        if (p->ept.map(gpa, frames[i], ept::PageSize::size_4k, ept::access_rwx,
                       ept::memory_type_wb) != ept::Status::ok)
            return GODWIT_HC_NO_MEMORY;
    }
    invalidate(*p);
    return GODWIT_HC_OK;
}

u64 set_state(u32 id, u32 index, const godwit_hc_vcpu_state& state) {
    Partition* p = lookup(id);
    if (p == nullptr || index >= p->vcpu_count)
        return GODWIT_HC_BAD_ARGUMENT;
    Vcpu& v = p->vcpus[index];
    if (__atomic_exchange_n(&v.running, true, __ATOMIC_ACQUIRE))
        return GODWIT_HC_BUSY;
    u64 result = GODWIT_HC_OK;
    if (!ensure_vcpu(id, *p, index)) {
        result = GODWIT_HC_NO_MEMORY;
    } else {
        v.vmx.set_state(state);
        v.vmx.release();
        v.stopped = false;
        v.pending_in = false;
    }
    __atomic_store_n(&v.running, false, __ATOMIC_RELEASE);
    return result;
}

u64 get_state(u32 id, u32 index, godwit_hc_vcpu_state& state) {
    Partition* p = lookup(id);
    if (p == nullptr || index >= p->vcpu_count || !p->vcpus[index].created)
        return GODWIT_HC_BAD_ARGUMENT;
    Vcpu& v = p->vcpus[index];
    if (__atomic_exchange_n(&v.running, true, __ATOMIC_ACQUIRE))
        return GODWIT_HC_BUSY; // only a stopped (not running) vCPU has a stable state
    v.vmx.get_state(state);
    v.vmx.release();
    __atomic_store_n(&v.running, false, __ATOMIC_RELEASE);
    return GODWIT_HC_OK;
}

u64 run(u32 id, u32 index, godwit_hc_vcpu_run& out) {
    Partition* p = lookup(id);
    if (p == nullptr || index >= p->vcpu_count)
        return GODWIT_HC_BAD_ARGUMENT;
    Vcpu& v = p->vcpus[index];
    if (!v.created)
        return GODWIT_HC_BAD_ARGUMENT; // no state set yet
    if (__atomic_exchange_n(&v.running, true, __ATOMIC_ACQUIRE))
        return GODWIT_HC_BUSY; // another root thread runs this vCPU
    u32 flags = out.flags;
    u32 in_value = out.in_value;
    out = godwit_hc_vcpu_run{};
    VmxVcpu& g = v.vmx;
    g.write_host_state(); // this CPU's GDT, TSS, GS base
    if (v.pending_in) {
        if ((flags & GODWIT_RUN_COMPLETE_IN) == 0) {
            g.release();
            __atomic_store_n(&v.running, false, __ATOMIC_RELEASE);
            return GODWIT_HC_BAD_ARGUMENT; // the last IN needs its value first
        }
        u64 mask = v.in_size == 4 ? 0xFFFFFFFFull : (1ull << (8 * v.in_size)) - 1;
        g.regs.rax = v.in_size == 4 ? in_value : ((g.regs.rax & ~mask) | (in_value & mask));
        g.skip_instruction(v.in_length);
        v.pending_in = false;
    }
    for (bool done = v.stopped; !done;) {
        VmExit e = g.run();
        if (e.entry_failed) {
            out.exit_reason = GODWIT_EXIT_SHUTDOWN;
            out.qualification = e.instruction_error != 0 ? e.instruction_error : e.reason;
            v.stopped = true;
            log(LogLevel::warn, "partition %u vCPU %u: VM entry failed (%s)", id, index,
                e.instruction_error != 0 ? vmx::vm_instruction_error_text(e.instruction_error)
                                         : vmx::exit_reason_name(e.reason));
            break;
        }
        out.rip = e.guest_rip;
        switch (static_cast<ExitReason>(e.reason)) {
        case ExitReason::external_interrupt:
            out.exit_reason = GODWIT_EXIT_INTERRUPTED; // the root takes it when it resumes
            done = true;
            break;
        case ExitReason::io_instruction: {
            vmx::IoAccess io = vmx::decode_io(e.qualification);
            if (io.string) { // INS/OUTS: not emulated; the guest cannot continue
                out.exit_reason = GODWIT_EXIT_SHUTDOWN;
                out.qualification = e.qualification;
                v.stopped = true;
                done = true;
                break;
            }
            out.exit_reason = GODWIT_EXIT_IO;
            out.port = io.port;
            out.size = io.size;
            out.direction = io.in ? 1 : 0;
            if (io.in) {
                v.pending_in = true;
                v.in_size = io.size;
                v.in_length = e.instruction_length;
            } else {
                u64 mask = io.size == 4 ? 0xFFFFFFFFull : (1ull << (8 * io.size)) - 1;
                out.value = static_cast<u32>(g.regs.rax & mask);
                g.skip_instruction(e.instruction_length);
            }
            done = true;
            break;
        }
        case ExitReason::hlt:
            g.skip_instruction(e.instruction_length);
            out.exit_reason = GODWIT_EXIT_HLT;
            done = true;
            break;
        case ExitReason::ept_violation:
            // Outside the guest's RAM: nothing is mapped there. The VMM decides (no device
            // claims it: the VM stops). The instruction is not retired.
            out.exit_reason = GODWIT_EXIT_MEMORY;
            out.gpa = e.guest_physical;
            out.qualification = e.qualification;
            done = true;
            break;
        case ExitReason::vmcall: // no hypercalls for guests: #UD, as on a CPU without them
            g.inject_ud();
            break;
        default: {
            ExitOutcome o = handle_exit(g, e);
            if (o.action == ExitAction::resume)
                break;
            out.exit_reason = GODWIT_EXIT_SHUTDOWN;
            out.qualification = e.reason;
            v.stopped = true;
            done = true;
            log(LogLevel::warn, "partition %u vCPU %u stopped: %s (exit %u at rip 0x%lx)", id,
                index, o.why != nullptr ? o.why : "unhandled exit", e.reason, e.guest_rip);
            break;
        }
        }
    }
    if (v.stopped && out.exit_reason == 0)
        out.exit_reason = GODWIT_EXIT_SHUTDOWN;
    g.release(); // next run may be on another CPU
    __atomic_store_n(&v.running, false, __ATOMIC_RELEASE);
    return GODWIT_HC_OK;
}

u64 guest_bytes() {
    u64 total = 0;
    for (const Partition& p : table)
        total += p.used ? p.mapped_bytes : 0;
    return total;
}

} // namespace godwit::hv::partitions
