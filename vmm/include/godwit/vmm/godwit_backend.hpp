// The VcpuBackend over /dev/godwit: a guest partition in the Godwit hypervisor, its RAM the
// VMM's own GuestMemory mapping (pinned and mapped by the root driver), its vCPUs run by
// GODWIT_IOCTL_VCPU_RUN on the calling thread's CPU (docs/hypercall-abi.md).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "godwit/vmm/guest_memory.hpp"
#include "godwit/vmm/partition_access.hpp"
#include "godwit/vmm/vcpu_state.hpp"
#include "godwit/vmm/vm_runner.hpp"

namespace godwit::vmm {

class GodwitBackend final : public VcpuBackend, public PartitionAccess {
  public:
    // Creates the partition and maps `memory`'s RAM ranges. Throws godwit::Error.
    GodwitBackend(GuestMemory& memory, unsigned vcpus, const std::string& device = "/dev/godwit");
    ~GodwitBackend() override; // closing the device destroys the partition
    GodwitBackend(const GodwitBackend&) = delete;
    GodwitBackend& operator=(const GodwitBackend&) = delete;

    // Registers, then the FPU state (xcr0, xsave_area; an empty area is the reset state).
    // Throws godwit::Error (invalid_input) for an FPU state the hypervisor refuses.
    void set_state(unsigned vcpu, const VcpuState& state) override;
    // The architectural registers as the hypervisor holds them (the vCPU must not be
    // running): general, RIP/RFLAGS, CR0/3/4, EFER, segments, GDTR/IDTR, and the x87/SSE/
    // AVX state with XCR0 (xsave_area in the standard XSAVE format, ABI 1.4).
    VcpuState get_state(unsigned vcpu) override;
    VcpuExit run(unsigned vcpu, const IoAccess* completed) override;
    // Ends run() of `vcpu` with Kind::kicked: root interrupts end every hypervisor run
    // quickly (GODWIT_EXIT_INTERRUPTED) and idle waits watch for it.
    void kick(unsigned vcpu) override;
    // Gives a pending read (IN / MMIO load) its value without entering the guest, so the
    // vCPU's state is whole while it is paused.
    void complete_read(unsigned vcpu, const IoAccess& read);

    // Save/restore and migration (hypercall ABI 1.3).
    // Clears the log and arms every page of guest RAM (PML where the CPU has it, EPT write
    // protection otherwise); the second form insists on write protection (ABI 1.5).
    void dirty_log_enable() override;
    void dirty_log_enable_write_protect();
    void dirty_log_disable() override;
    // bitmap[w] bit n = guest page w*64+n was written since enable or the last fetch;
    // fetching clears. Resized to cover every page below the end of RAM.
    void dirty_log_fetch(std::vector<std::uint64_t>& bitmap) override;
    // Everything of a vCPU VcpuState lacks (LAPIC, halted / waiting-for-SIPI, pending event,
    // interruptibility, PAT, SYSENTER, guest TSC): an opaque blob the hypervisor validates
    // on set. The vCPU must not be running; set_state first when restoring.
    std::vector<std::uint8_t> get_vcpu_extra(unsigned vcpu) override;
    void set_vcpu_extra(unsigned vcpu, const std::vector<std::uint8_t>& blob) override;
    std::vector<std::uint8_t> get_irqchip() override; // the partition's IOAPIC, opaque
    void set_irqchip(const std::vector<std::uint8_t>& blob) override;

    // Sets IOAPIC pin `pin` of the partition to `level` and wakes the vCPUs it reached.
    void irq(unsigned pin, bool level);
    unsigned partition() const { return id_; }

  private:
    void dirty_log_op(unsigned op, const char* what); // enable/disable ioctls
    int fd_ = -1;
    unsigned id_ = 0;
    unsigned vcpus_;
    std::uint64_t tsc_per_us_;
    std::uint64_t ram_pages_ = 0;
    // An idle vCPU (HLT with nothing to deliver, or an AP before its SIPI) sleeps here until
    // its timer deadline, an IPI/IRQ from another thread (woken) or a stop (kick).
    struct Idle {
        std::mutex mutex;
        std::condition_variable cv;
        std::atomic<bool> woken{false};
        std::atomic<bool> stop{false};
    };
    Idle idle_[8];
    void wait_idle(unsigned vcpu, std::uint64_t wake_tsc);
    void set_fpu(unsigned vcpu, const VcpuState& state);
    void wake_vcpus(std::uint32_t mask);
};

} // namespace godwit::vmm
