// What save/restore and migration need from a hypervisor partition beyond running vCPUs
// (hypercall ABI 1.3: registers, the opaque rest of each vCPU, the IOAPIC, dirty logging).
#pragma once

#include <cstdint>
#include <vector>

#include "godwit/vmm/vcpu_state.hpp"

namespace godwit::vmm {

// What migration needs from the hypervisor partition beyond running vCPUs. GodwitBackend
// implements it over /dev/godwit; tests use a fake.
class PartitionAccess {
  public:
    virtual ~PartitionAccess() = default;
    virtual VcpuState get_state(unsigned vcpu) = 0;
    virtual void set_state(unsigned vcpu, const VcpuState& state) = 0;
    virtual void dirty_log_enable() = 0;
    virtual void dirty_log_disable() = 0;
    // bit n of word w = guest page w*64+n written since enable or the last fetch; clears.
    virtual void dirty_log_fetch(std::vector<std::uint64_t>& bitmap) = 0;
    // The hypervisor's opaque, versioned rest of a vCPU (LAPIC, activity, pending events...).
    virtual std::vector<std::uint8_t> get_vcpu_extra(unsigned vcpu) = 0;
    virtual void set_vcpu_extra(unsigned vcpu, const std::vector<std::uint8_t>& blob) = 0;
    virtual std::vector<std::uint8_t> get_irqchip() = 0; // the partition's IOAPIC, opaque
    virtual void set_irqchip(const std::vector<std::uint8_t>& blob) = 0;
};

} // namespace godwit::vmm
