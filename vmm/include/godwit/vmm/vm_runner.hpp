// vCPU threads of one VM: each runs its vCPU through a backend (the /dev/godwit run ioctl
// in production, a scripted fake in tests) and hands the exits the hypervisor does not
// handle itself — port I/O, MMIO, shutdown — to the VmPlatform's devices. The VM ends when
// the platform records a stop (debug exit, power-off, access outside RAM), a vCPU shuts
// down, a device model fails, or someone calls request_stop.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>
#include <optional>

#include "godwit/vmm/io_bus.hpp"
#include "godwit/vmm/vm_platform.hpp"

namespace godwit::vmm {

// One exit record from the hypervisor.
struct VcpuExit {
    enum class Kind {
        port_io,  // access: port number, size, direction, data
        mmio,     // access: guest-physical address outside RAM, decoded (size, data)
        unhandled_memory, // outside RAM, not decodable: no device can take it
        halt,     // HLT with interrupts off and nothing pending: the vCPU is idle
        shutdown, // triple fault
        kicked,   // run() interrupted by kick()
    };
    Kind kind = Kind::kicked;
    IoAccess access;
};

class VcpuBackend {
  public:
    virtual ~VcpuBackend() = default;
    // Runs vCPU `vcpu` until the next exit for the VMM. `completed` is the previous exit's
    // access when it was a read, with the data the device returned (the backend writes it
    // to the guest's register before resuming); nullptr otherwise.
    virtual VcpuExit run(unsigned vcpu, const IoAccess* completed) = 0;
    // Makes a run() of `vcpu` in progress (or the next one) return Kind::kicked soon.
    // Called from other threads.
    virtual void kick(unsigned vcpu) = 0;
};

class VmRunner {
  public:
    VmRunner(VmPlatform& platform, VcpuBackend& backend, unsigned vcpu_count);
    // Runs every vCPU on its own thread until the VM stops; returns why. Rethrows nothing:
    // a device-model error becomes VmStop::Reason::failed with the message.
    VmStop run();
    // From any thread (godwit vm stop/kill): ends run() with Reason::requested.
    void request_stop();

  private:
    void vcpu_loop(unsigned vcpu);
    void stop_all(VmStop stop);

    VmPlatform& platform_;
    VcpuBackend& backend_;
    unsigned vcpu_count_;
    std::atomic<bool> stopping_{false};
};

} // namespace godwit::vmm
