// The VcpuBackend over /dev/godwit: a guest partition in the Godwit hypervisor, its RAM the
// VMM's own GuestMemory mapping (pinned and mapped by the root driver), its vCPUs run by
// GODWIT_IOCTL_VCPU_RUN on the calling thread's CPU (docs/hypercall-abi.md).
#pragma once

#include <string>

#include "godwit/vmm/guest_memory.hpp"
#include "godwit/vmm/vcpu_state.hpp"
#include "godwit/vmm/vm_runner.hpp"

namespace godwit::vmm {

class GodwitBackend final : public VcpuBackend {
  public:
    // Creates the partition and maps `memory`'s RAM ranges. Throws godwit::Error.
    GodwitBackend(GuestMemory& memory, unsigned vcpus, const std::string& device = "/dev/godwit");
    ~GodwitBackend() override; // closing the device destroys the partition
    GodwitBackend(const GodwitBackend&) = delete;
    GodwitBackend& operator=(const GodwitBackend&) = delete;

    void set_state(unsigned vcpu, const VcpuState& state);
    // The architectural registers as the hypervisor holds them (the vCPU must not be
    // running): general, RIP/RFLAGS, CR0/3/4, EFER, segments, GDTR/IDTR.
    VcpuState get_state(unsigned vcpu);
    VcpuExit run(unsigned vcpu, const IoAccess* completed) override;
    // Root interrupts end every run quickly (GODWIT_EXIT_INTERRUPTED), so a kick only has
    // to be noticed between runs.
    void kick(unsigned vcpu) override;
    unsigned partition() const { return id_; }

  private:
    int fd_ = -1;
    unsigned id_ = 0;
    unsigned vcpus_;
    std::atomic<bool> kicked_[8] = {};
};

} // namespace godwit::vmm
