// Dirty-page logging of a guest partition. Two mechanisms behind one bitmap:
// - PML (Vol. 3C 29.3.6), when the CPU has it and EPT A/D flags: ENABLE clears the EPT dirty
//   flag of every RAM page (as 4 KiB leaves); the CPU logs the address of the first write to
//   each clean page into the vCPU's 512-entry log and exits when it is full; the log is
//   harvested into the bitmap then and before every return to the root. FETCH hands out the
//   bits and clears those pages' dirty flags again. No exit per page.
// - EPT write protection (every VT-x CPU with EPT): ENABLE write-protects every RAM page;
//   the first write to a page exits, sets the page's bit and makes the page writable again;
//   FETCH write-protects the pages it hands out again.
// Dirty-flag clears and permission decreases are flushed from every CPU's EPT TLB before its
// next entry of this partition (a cached dirty translation would not log again), and ENABLE
// and FETCH return only once every other CPU running one of its vCPUs has left it since.
#include "arch/x86/intrinsics.hpp"
#include "arch/x86/vmx/vmcs_fields.hpp"
#include "arch/x86/vmx/vmx_capabilities.hpp"
#include "arch/x86/vmx/vmx_state.hpp"
#include "dirty_log/dirty_bitmap.hpp"
#include "kernel/console.hpp"
#include "kernel/percpu.hpp"
#include "memory/frame_allocator.hpp"
#include "partition/partition.hpp"
#include "partition/partitions.hpp"

namespace godwit::hv::partitions {
namespace {

constexpr u64 pages_per_chunk = page_size * 8; // bits in one 4 KiB frame
constexpr u64 words_per_chunk = page_size / 8;
constexpr u8 access_rx = ept::access_read | ept::access_execute;

u64 ram_pages(const Partition& p) {
    return p.ram_bytes / page_size;
}

void invept_here(Partition& p) {
    const vmx::Features& f = vmx_features();
    x86::invept(f.invept_single ? 1 : 2, x86::InveptDescriptor{eptp_of(p), 0});
}

// Every CPU drops this partition's cached translations before it next runs one of its vCPUs.
// Sequentially consistent with begin_guest_entry: either that CPU sees these bits before it
// enters, or wait_for_flush sees it inside the guest.
void flush_everywhere(Partition& p) {
    __atomic_store_n(&p.flush_cpus, ~0ull, __ATOMIC_SEQ_CST);
}

// After flush_everywhere for a permission decrease or dirty-flag clear: waits until every
// other CPU that was running a vCPU of p has left it (its next entry flushes). Until then it
// could write through a translation cached before the change, and that write would never be
// logged: with an SMP root, the VMM's vCPU threads run on other CPUs than the fetch. A guest
// leaves at the root's next interrupt on that CPU (external-interrupt exiting), which is
// within one scheduler tick of the root on that CPU.
void wait_for_flush(Partition& p) {
    u32 self = this_cpu().index;
    for (u32 i = 0; i < cpu_count(); ++i) {
        PerCpu& c = cpu(i);
        if (i == self || __atomic_load_n(&c.guest, __ATOMIC_SEQ_CST) != &p)
            continue;
        u64 entries = __atomic_load_n(&c.guest_entries, __ATOMIC_SEQ_CST);
        for (u64 spins = 1; __atomic_load_n(&c.guest, __ATOMIC_ACQUIRE) == &p &&
                            __atomic_load_n(&c.guest_entries, __ATOMIC_ACQUIRE) == entries;
             ++spins) {
            x86::pause();
            if ((spins & ((1ull << 28) - 1)) == 0)
                log(LogLevel::warn,
                    "partition %u: cpu %u has not left the partition's vCPU since the dirty "
                    "log's EPT flush (no root interrupt there?): still waiting",
                    p.id, i);
        }
    }
}

u64* word_of(Partition& p, u64 page) {
    return &p.dirty_chunks[page / pages_per_chunk][(page % pages_per_chunk) / 64];
}

// Starts logging the pages in [gpa, gpa+length) afresh: their next write is logged.
ept::Status rearm(Partition& p, u64 gpa, u64 length) {
    return p.dirty_by_pml ? p.ept.clear_dirty(gpa, length) : p.ept.protect(gpa, length, access_rx);
}

} // namespace

void free_dirty_log(Partition& p) {
    for (u64*& chunk : p.dirty_chunks) {
        if (chunk != nullptr)
            free_frame(PhysAddr{reinterpret_cast<u64>(chunk)});
        chunk = nullptr;
    }
    p.dirty_logging = false;
}

void begin_guest_entry(Partition& p) {
    PerCpu& c = this_cpu();
    __atomic_store_n(&c.guest, &p, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&c.guest_entries, 1, __ATOMIC_SEQ_CST);
    flush_ept_if_needed(p);
}

void end_guest_entry() {
    __atomic_store_n(&this_cpu().guest, nullptr, __ATOMIC_RELEASE);
}

void flush_ept_if_needed(Partition& p) {
    u64 bit = 1ull << (this_cpu().index % 64);
    if ((__atomic_load_n(&p.flush_cpus, __ATOMIC_ACQUIRE) & bit) == 0)
        return;
    __atomic_fetch_and(&p.flush_cpus, ~bit, __ATOMIC_ACQ_REL);
    invept_here(p);
}

void harvest_pml(Partition& p, Vcpu& v) {
    if (!p.pml || v.pml_log == nullptr)
        return;
    VmxVcpu& g = v.vmx;
    u16 index = static_cast<u16>(g.read(vmx::VmcsField::guest_pml_index));
    if (index == dirty_log::pml_entries - 1)
        return; // empty
    {
        SpinLockGuard guard(p.ept_lock);
        if (p.dirty_logging && p.dirty_by_pml) {
            dirty_log::for_each_pml_entry(v.pml_log, index, [&p](u64 gpa) {
                if (gpa < p.ram_bytes) {
                    u64 page = gpa / page_size;
                    __atomic_fetch_or(word_of(p, page), 1ull << (page % 64), __ATOMIC_RELAXED);
                }
            });
        }
    }
    g.write(vmx::VmcsField::guest_pml_index, dirty_log::pml_entries - 1);
}

bool log_dirty_write(Partition& p, u64 gpa) {
    SpinLockGuard guard(p.ept_lock);
    if (!p.dirty_logging || gpa >= p.ram_bytes)
        return false;
    u64 hpa = 0;
    u8 access = 0;
    ept::PageSize size{};
    if (!p.ept.translate(gpa, hpa, access, size))
        return false; // not RAM: MMIO emulation decides
    u64 page = gpa / page_size;
    __atomic_fetch_or(word_of(p, page), 1ull << (page % 64), __ATOMIC_RELAXED);
    if ((access & ept::access_write) == 0)
        p.ept.protect(page * page_size, page_size, ept::access_rwx);
    // A permission increase: a stale read-only translation elsewhere only faults once more.
    invept_here(p);
    return true;
}

u64 dirty_log(u32 id, u32 op) {
    Partition* p = find(id);
    if (p == nullptr)
        return GODWIT_HC_BAD_ARGUMENT;
    SpinLockGuard guard(p->ept_lock);
    if (op == GODWIT_DIRTY_DISABLE) {
        if (p->dirty_logging && !p->dirty_by_pml)
            p->ept.protect(0, p->ram_bytes, ept::access_rwx);
        free_dirty_log(*p);
        flush_everywhere(*p);
        return GODWIT_HC_OK;
    }
    // Enable (again): a clean log and every RAM page armed. Switching mechanisms first
    // undoes the old one's write protection (PML's clear dirty flags need nothing).
    bool by_pml = p->pml && op != GODWIT_DIRTY_ENABLE_WRITE_PROTECT;
    if (p->dirty_logging && !p->dirty_by_pml && by_pml)
        p->ept.protect(0, p->ram_bytes, ept::access_rwx);
    p->dirty_by_pml = by_pml;
    u64 chunks = (ram_pages(*p) + pages_per_chunk - 1) / pages_per_chunk;
    for (u64 i = 0; i < chunks; ++i) {
        if (p->dirty_chunks[i] == nullptr) {
            PhysAddr frame = alloc_frame();
            if (frame.value == 0) {
                free_dirty_log(*p);
                return GODWIT_HC_NO_MEMORY;
            }
            p->dirty_chunks[i] = static_cast<u64*>(phys_to_virt(frame));
        }
        for (u64 w = 0; w < words_per_chunk; ++w)
            p->dirty_chunks[i][w] = 0;
    }
    if (rearm(*p, 0, p->ram_bytes) != ept::Status::ok) {
        if (!p->dirty_by_pml)
            p->ept.protect(0, p->ram_bytes, ept::access_rwx);
        free_dirty_log(*p);
        return GODWIT_HC_NO_MEMORY;
    }
    p->dirty_logging = true;
    flush_everywhere(*p);
    wait_for_flush(*p);
    log(LogLevel::info, "partition %u: dirty logging on (%lu pages, %s)", id, ram_pages(*p),
        p->dirty_by_pml ? "PML" : "EPT write protection");
    return GODWIT_HC_OK;
}

u64 dirty_fetch(u32 id, u64 first_page, u32 pages, DirtyWordSink sink, void* context) {
    Partition* p = find(id);
    if (p == nullptr)
        return GODWIT_HC_BAD_ARGUMENT;
    SpinLockGuard guard(p->ept_lock);
    if (!p->dirty_logging)
        return GODWIT_HC_BAD_ARGUMENT; // enable first
    bool rearmed_any = false;
    for (u64 w = 0; w < pages / 64; ++w) {
        u64 page = first_page + w * 64;
        u64 bits = 0;
        if (page < ram_pages(*p))
            bits = __atomic_exchange_n(word_of(*p, page), 0, __ATOMIC_ACQ_REL);
        sink(context, w, bits);
        for (u64 rest = bits; rest != 0; rest &= rest - 1) {
            u64 gpa = (page + static_cast<u64>(__builtin_ctzll(rest))) * page_size;
            rearm(*p, gpa, page_size);
            rearmed_any = true;
        }
    }
    if (rearmed_any) {
        flush_everywhere(*p);
        flush_ept_if_needed(*p);
        wait_for_flush(*p);
    }
    return GODWIT_HC_OK;
}

} // namespace godwit::hv::partitions
