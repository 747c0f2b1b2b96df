// Application processors: started one at a time with INIT-SIPI-SIPI, each parks in a loop
// waiting for work posted by run_on_cpu / run_on_all_cpus.
#include "kernel/smp.hpp"

#include "arch/x86/intrinsics.hpp"
#include "kernel/console.hpp"
#include "kernel/percpu.hpp"
#include "kernel/percpu_setup.hpp"
#include "kernel/smp_setup.hpp"
#include "memory/frame_allocator.hpp"
#include "platform/lapic.hpp"
#include "platform/pit.hpp"

extern "C" char __ap_trampoline_start[], __ap_trampoline_end[];
extern "C" char ap_trampoline_start[], ap_stack_slot[], ap_index_slot[];
extern "C" void* memcpy(void*, const void*, godwit::hv::usize);

namespace godwit::hv {
namespace {

constexpr u64 trampoline_base = 0x8000;
constexpr usize ap_stack_pages = 4; // 16 KiB per AP

struct Mailbox {
    CpuWork fn;
    void* arg;
    u64 requested; // incremented by the poster
    u64 done;      // set to `requested` by the CPU when fn returned
};
Mailbox mailboxes[max_cpus];

u64 trampoline_slot(const char* symbol) {
    return trampoline_base + static_cast<u64>(symbol - ap_trampoline_start);
}

void post(u32 index, CpuWork fn, void* arg) {
    Mailbox& m = mailboxes[index];
    m.fn = fn;
    m.arg = arg;
    __atomic_fetch_add(&m.requested, 1, __ATOMIC_RELEASE);
}

void wait_done(u32 index) {
    Mailbox& m = mailboxes[index];
    while (__atomic_load_n(&m.done, __ATOMIC_ACQUIRE) !=
           __atomic_load_n(&m.requested, __ATOMIC_RELAXED)) {
        x86::pause();
    }
}

} // namespace

extern "C" [[noreturn]] void ap_main(u64 index) {
    lapic_enable_this_cpu();
    percpu_init_this_cpu(static_cast<u32>(index), lapic_id(),
                         *reinterpret_cast<volatile u64*>(trampoline_slot(ap_stack_slot)));
    log(LogLevel::info, "cpu %lu online (apic id %u)", index, this_cpu().apic_id);
    Mailbox& m = mailboxes[index];
    u64 seen = 0;
    for (;;) {
        u64 requested = __atomic_load_n(&m.requested, __ATOMIC_ACQUIRE);
        if (requested != seen) {
            m.fn(m.arg);
            seen = requested;
            __atomic_store_n(&m.done, seen, __ATOMIC_RELEASE);
        }
        x86::pause();
    }
}

u32 smp_start_aps(const u32* apic_ids, u32 count) {
    usize size = static_cast<usize>(__ap_trampoline_end - __ap_trampoline_start);
    memcpy(reinterpret_cast<void*>(trampoline_base), __ap_trampoline_start, size);
    u32 bsp_apic = this_cpu().apic_id;
    u32 next_index = 1;
    for (u32 i = 0; i < count && next_index < max_cpus; ++i) {
        if (apic_ids[i] == bsp_apic)
            continue;
        PhysAddr stack = alloc_frames(ap_stack_pages);
        if (stack.value == 0) {
            log(LogLevel::error, "smp: no memory for the stack of apic %u", apic_ids[i]);
            break;
        }
        u32 before = cpu_count();
        *reinterpret_cast<volatile u64*>(trampoline_slot(ap_stack_slot)) =
            stack.value + ap_stack_pages * page_size;
        *reinterpret_cast<volatile u64*>(trampoline_slot(ap_index_slot)) = next_index;
        lapic_start_ap(apic_ids[i], static_cast<u8>(trampoline_base >> 12));
        // Wait up to ~1 s for the AP to come online before giving up on it.
        for (int waited = 0; cpu_count() == before && waited < 1000; ++waited)
            pit_delay_us(1000);
        if (cpu_count() == before) {
            log(LogLevel::warn, "smp: apic %u did not start", apic_ids[i]);
            free_frames(stack, ap_stack_pages);
            continue;
        }
        ++next_index;
    }
    return cpu_count();
}

void run_on_cpu(u32 index, CpuWork fn, void* arg) {
    if (index == this_cpu().index) {
        fn(arg);
        return;
    }
    post(index, fn, arg);
    wait_done(index);
}

void start_on_cpu(u32 index, CpuWork fn, void* arg) {
    if (index != this_cpu().index)
        post(index, fn, arg);
}

void run_on_all_cpus(CpuWork fn, void* arg) {
    u32 self = this_cpu().index;
    u32 n = cpu_count();
    for (u32 i = 0; i < n; ++i) {
        if (i != self)
            post(i, fn, arg);
    }
    fn(arg);
    for (u32 i = 0; i < n; ++i) {
        if (i != self)
            wait_done(i);
    }
}

} // namespace godwit::hv
