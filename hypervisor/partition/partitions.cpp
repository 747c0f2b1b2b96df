#include "partition/partitions.hpp"

#include "arch/x86/intrinsics.hpp"
#include "arch/x86/vmx/vmcs_fields.hpp"
#include "arch/x86/vmx/vmx_state.hpp"
#include "ept/ept_table.hpp"
#include "kernel/console.hpp"
#include "kernel/spinlock.hpp"
#include "memory/frame_allocator.hpp"
#include "memory/pool_table_memory.hpp"
#include "partition/partition.hpp"

namespace godwit::hv::partitions {

namespace {
PoolTableMemory pool_tables;
}

ept::TableMemory& table_memory() {
    return pool_tables;
}

u64 guest_tsc(const Vcpu& v) {
    return x86::rdtsc() + v.tsc_offset;
}

namespace {

Partition table[GODWIT_MAX_PARTITIONS];
SpinLock lock; // the table: create, destroy, map, and claiming a vCPU

// VPIDs: 1 is the root's; partition p's vCPU v gets 2 + p * max_vcpus + v.
u16 vpid_of(u32 id, u32 vcpu) {
    return static_cast<u16>(2 + id * GODWIT_MAX_VCPUS + vcpu);
}

void invalidate(Partition& p) {
    const vmx::Features& f = vmx_features();
    x86::invept(f.invept_single ? 1 : 2, x86::InveptDescriptor{eptp_of(p), 0});
}

Partition* lookup(u32 id) {
    return id < GODWIT_MAX_PARTITIONS && table[id].used ? &table[id] : nullptr;
}

void release_vcpu_memory(Vcpu& v) {
    fpu_destroy(v);
    if (v.pml_log != nullptr)
        free_frame(PhysAddr{reinterpret_cast<u64>(v.pml_log)});
    v.pml_log = nullptr;
}

bool ensure_vcpu(Partition& p, u32 index) {
    Vcpu& v = p.vcpus[index];
    if (v.created)
        return true;
    if (!fpu_create(v))
        return false;
    VcpuConfig c{};
    c.mode = GuestMode::real_mode;
    c.eptp = eptp_of(p);
    c.vpid = vpid_of(p.id, index);
    c.exit_on_interrupts = true;
    if (p.pml) {
        PhysAddr log_frame = alloc_frame();
        if (log_frame.value == 0) {
            fpu_destroy(v);
            return false;
        }
        v.pml_log = static_cast<u64*>(phys_to_virt(log_frame));
        c.pml = true;
        c.pml_buffer = log_frame.value;
    }
    const char* error = nullptr;
    if (!v.vmx.create(c, &error)) {
        log(LogLevel::error, "partition %u: vCPU %u: %s", p.id, index, error);
        release_vcpu_memory(v);
        return false;
    }
    v.created = true;
    return true;
}

} // namespace

Partition* find(u32 id) {
    SpinLockGuard guard(lock);
    return lookup(id);
}

ClaimedVcpu::ClaimedVcpu(u32 id, u32 index, bool need_state) {
    SpinLockGuard guard(lock);
    Partition* p = lookup(id);
    if (p == nullptr || index >= p->vcpu_count || (need_state && !p->vcpus[index].created)) {
        status_ = GODWIT_HC_BAD_ARGUMENT;
        return;
    }
    Vcpu& v = p->vcpus[index];
    if (v.running) {
        status_ = GODWIT_HC_BUSY;
        return;
    }
    v.running = true;
    vcpu_ = &v;
    partition_ = p;
}

ClaimedVcpu::~ClaimedVcpu() {
    if (vcpu_ == nullptr)
        return;
    if (vcpu_->created)
        vcpu_->vmx.release();
    __atomic_store_n(&vcpu_->running, false, __ATOMIC_RELEASE);
}

u64 create(u64 ram_bytes, u32 vcpus, u32& id) {
    SpinLockGuard guard(lock);
    for (u32 i = 0; i < GODWIT_MAX_PARTITIONS; ++i) {
        Partition& p = table[i];
        if (p.used)
            continue;
        fpu_probe();
        if (p.ept.init() != ept::Status::ok)
            return GODWIT_HC_NO_MEMORY;
        p.used = true;
        p.id = i;
        p.ram_bytes = ram_bytes;
        p.mapped_bytes = 0;
        p.vcpu_count = vcpus;
        p.exit_storm_logged = false;
        const vmx::Features& f = vmx_features();
        p.pml = f.pml && f.ept_accessed_dirty;
        p.ioapic.reset(vcpus); // IOAPIC id after the LAPIC ids, as the VMM's MADT says
        for (u32 n = 0; n < GODWIT_MAX_VCPUS; ++n) {
            Vcpu& v = p.vcpus[n];
            v = Vcpu{};
            v.lapic.reset(n, n == 0, tsc_per_bus_tick);
            v.waiting_for_sipi = n != 0; // APs wait for the BSP's INIT-SIPI-SIPI
        }
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
        release_vcpu_memory(v);
        v = Vcpu{};
    }
    free_dirty_log(*p);
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
    SpinLockGuard ept_guard(p->ept_lock);
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
    ClaimedVcpu call(id, index, false);
    if (call.status() != GODWIT_HC_OK)
        return call.status();
    if (!ensure_vcpu(call.partition(), index))
        return GODWIT_HC_NO_MEMORY;
    Vcpu& v = call.vcpu();
    v.vmx.set_state(state);
    v.stopped = false;
    v.pending_read = PendingRead::none;
    return GODWIT_HC_OK;
}

u64 get_state(u32 id, u32 index, godwit_hc_vcpu_state& state) {
    ClaimedVcpu call(id, index, true);
    if (call.status() == GODWIT_HC_OK)
        call.vcpu().vmx.get_state(state); // only a vCPU no thread runs has a stable state
    return call.status();
}

u64 irq(u32 id, u32 pin, bool level, u32& wake) {
    Partition* p = nullptr;
    {
        SpinLockGuard guard(lock);
        p = lookup(id);
        if (p == nullptr)
            return GODWIT_HC_BAD_ARGUMENT;
        // The partition cannot go away while its owner (the same fd, serialized by the
        // driver) raises an IRQ on it, but the IOAPIC lock is taken inside the table lock so
        // a concurrent destroy waits.
        SpinLockGuard irq_guard(p->irq_lock);
        wake = 0;
        set_irq(*p, pin, level, wake);
    }
    return GODWIT_HC_OK;
}

u64 guest_bytes() {
    u64 total = 0;
    for (const Partition& p : table)
        total += p.used ? p.mapped_bytes : 0;
    return total;
}

} // namespace godwit::hv::partitions
