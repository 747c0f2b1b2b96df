// EPT table pages from the hypervisor's frame allocator (its pool), reached through the
// identity map: the ept::TableMemory every partition, the root and the self-tests use.
#pragma once

#include "ept/ept_table.hpp"
#include "memory/frame_allocator.hpp"

namespace godwit::hv {

class PoolTableMemory final : public ept::TableMemory {
  public:
    u64 allocate_table() override { return alloc_frame().value; }
    void free_table(u64 physical) override { free_frame(PhysAddr{physical}); }
    u64* table(u64 physical) override {
        return static_cast<u64*>(phys_to_virt(PhysAddr{physical}));
    }
};

} // namespace godwit::hv
