// The hypercall dispatcher (ABI in abi/godwit_hypercall.h, docs/hypercall-abi.md): decodes
// a VMCALL's registers, validates every argument and fills the caller's buffers. Pure: the
// hypervisor state it reports and guest-memory access come through HypercallHost, so the
// validation is unit-tested on the host with a fake (tests/unit/hypervisor/hypercall_test).
#pragma once

#include "abi/godwit_hypercall.h"
#include "lib/types.hpp"

namespace godwit::hv::hypercall {

struct Call {
    u64 number; // RAX
    u64 arg0;   // RDI
    u64 arg1;   // RSI
    u64 arg2;   // RDX
    u8 cpl;     // caller's privilege level (SS.DPL)
    bool from_root;
};

struct Result {
    u64 status; // RAX on return: GODWIT_HC_*
    u64 value;  // RDX on return
};

// Largest CPU list buffer (bytes): 4096 CPUs, as the root driver allows.
inline constexpr u64 cpu_list_max = 4096 * sizeof(godwit_hc_cpu);
// Largest fixed-size output buffer a call accepts (callers may pass a bigger struct later).
inline constexpr u64 struct_buffer_max = 4096;

class HypercallHost {
  public:
    // True when [gpa, gpa+length) is memory the caller owns (for the root: its RAM).
    virtual bool caller_owns(u64 gpa, u64 length) const = 0;
    // Copies into caller memory that caller_owns() approved.
    virtual void copy_to_caller(u64 gpa, const void* source, u64 length) = 0;

    virtual void version(godwit_hc_version& out) const = 0;
    virtual u32 cpu_count() const = 0;
    virtual void cpu(u32 index, godwit_hc_cpu& out) const = 0;
    virtual void memory_stats(godwit_hc_memory_stats& out) const = 0;
    // The console ring: `size` bytes at `ring`, `written` bytes written since boot (the
    // byte at position p lives at ring[p % size]).
    virtual void console(const char*& ring, u64& size, u64& written) const = 0;

    // Copies from caller memory that caller_owns() approved.
    virtual void copy_from_caller(u64 gpa, void* destination, u64 length) const = 0;
    // Guest partitions (arguments already validated); each returns a GODWIT_HC_* status.
    virtual u64 partition_create(u64 ram_bytes, u32 vcpus, u32& id) = 0;
    virtual u64 partition_destroy(u32 id) = 0;
    virtual u64 partition_map(u32 id, u64 guest_gpa, const u64* frames, u32 count) = 0;
    virtual u64 vcpu_set_state(u32 id, u32 vcpu, const godwit_hc_vcpu_state& state) = 0;
    virtual u64 vcpu_run(u32 id, u32 vcpu, godwit_hc_vcpu_run& run) = 0;
    virtual u64 vcpu_get_state(u32 id, u32 vcpu, godwit_hc_vcpu_state& state) = 0;
    // Sets IOAPIC pin `pin` (< GODWIT_IOAPIC_PINS) of the partition; `wake` = vCPUs to wake.
    virtual u64 partition_irq(u32 id, u32 pin, bool level, u32& wake) = 0;
    // 1.3. Arguments validated (op known, range within the partition's RAM is the host's
    // check). dirty_fetch writes pages / 64 words to the caller's `bits_gpa`.
    virtual u64 dirty_log(u32 id, u32 op) = 0;
    virtual u64 dirty_fetch(u32 id, u64 first_page, u32 pages, u64 bits_gpa) = 0;
    virtual u64 vcpu_get_extra(u32 id, u32 vcpu, godwit_hc_vcpu_extra& extra) = 0;
    virtual u64 vcpu_set_extra(u32 id, u32 vcpu, const godwit_hc_vcpu_extra& extra) = 0;
    virtual u64 irqchip_get(u32 id, godwit_hc_irqchip& chip) = 0;
    virtual u64 irqchip_set(u32 id, const godwit_hc_irqchip& chip) = 0;
    // 1.4. set: format, reserved fields and area_bytes checked; the host checks the state
    // against the CPU (x86::check_fpu_state) before it changes anything.
    virtual u64 vcpu_get_fpu(u32 id, u32 vcpu, godwit_hc_vcpu_fpu& fpu) = 0;
    virtual u64 vcpu_set_fpu(u32 id, u32 vcpu, const godwit_hc_vcpu_fpu& fpu) = 0;

  protected:
    ~HypercallHost() = default;
};

Result dispatch(const Call& call, HypercallHost& host);

} // namespace godwit::hv::hypercall
