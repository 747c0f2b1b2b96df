// Guest partitions: each has its own EPT (guest RAM = root pages the VMM pinned and mapped
// through GODWIT_HC_PARTITION_MAP; the guest sees nothing else) and vCPUs with their own
// VMCS. GODWIT_HC_VCPU_RUN switches the calling CPU from the root to the guest until an
// exit the VMM must see (port I/O, HLT, memory outside the guest's RAM, shutdown) or a
// root interrupt. Arguments arrive validated by hypercall::dispatch.
#pragma once

#include "abi/godwit_hypercall.h"
#include "lib/types.hpp"

namespace godwit::hv::partitions {

u64 create(u64 ram_bytes, u32 vcpus, u32& id);
u64 destroy(u32 id);
u64 map(u32 id, u64 guest_gpa, const u64* frames, u32 count);
u64 set_state(u32 id, u32 vcpu, const godwit_hc_vcpu_state& state);
u64 run(u32 id, u32 vcpu, godwit_hc_vcpu_run& run);
u64 get_state(u32 id, u32 vcpu, godwit_hc_vcpu_state& state);
u64 irq(u32 id, u32 pin, bool level, u32& wake); // IOAPIC pin; wake = vCPUs to wake
u64 guest_bytes();                               // RAM mapped into partitions now

// 1.3: save/restore and migration.
u64 dirty_log(u32 id, u32 op); // GODWIT_DIRTY_ENABLE / GODWIT_DIRTY_DISABLE
using DirtyWordSink = void (*)(void* context, u64 word_index, u64 bits);
u64 dirty_fetch(u32 id, u64 first_page, u32 pages, DirtyWordSink sink, void* context);
u64 get_extra(u32 id, u32 vcpu, godwit_hc_vcpu_extra& extra);
u64 set_extra(u32 id, u32 vcpu, const godwit_hc_vcpu_extra& extra);
u64 irqchip_get(u32 id, godwit_hc_irqchip& chip);
u64 irqchip_set(u32 id, const godwit_hc_irqchip& chip);
// 1.4: the guest's FPU state and XCR0 (set validates before it changes anything).
u64 get_fpu(u32 id, u32 vcpu, godwit_hc_vcpu_fpu& fpu);
u64 set_fpu(u32 id, u32 vcpu, const godwit_hc_vcpu_fpu& fpu);

} // namespace godwit::hv::partitions
