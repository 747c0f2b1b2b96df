// vCPU threads of one VM: each runs its vCPU through a backend (the /dev/godwit run ioctl
// in production, a scripted fake in tests) and hands the exits the hypervisor does not
// handle itself — port I/O, MMIO, shutdown — to the VmPlatform's devices. The VM ends when
// the platform records a stop (debug exit, power-off, access outside RAM), a vCPU shuts
// down, a device model fails, or someone calls request_stop.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "godwit/vmm/io_bus.hpp"
#include "godwit/vmm/vm_platform.hpp"

namespace godwit::vmm {

// One exit record from the hypervisor.
struct VcpuExit {
    enum class Kind {
        port_io,          // access: port number, size, direction, data
        mmio,             // access: guest-physical address outside RAM, decoded (size, data)
        unhandled_memory, // outside RAM, not decodable: no device can take it
        halt,             // HLT with interrupts off and nothing pending: the vCPU is idle
        shutdown,         // triple fault
        kicked,           // run() interrupted by kick()
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
    // Called from other threads. A kicked run() still applies `completed` first: pause()
    // relies on it so a parked vCPU has no half-done read (its registers are a consistent
    // snapshot).
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

    // Parks every vCPU thread between two runs (none is inside the backend, and none has a
    // read whose data the guest has not received yet), for a consistent snapshot of the VM
    // (migration, save). Blocks until all are parked; returns false when the VM stopped
    // instead (then there is nothing to snapshot). Callable before run(): the threads then
    // park before their first run. Pauses do not nest.
    bool pause();
    // Lets parked vCPUs run again.
    void resume();
    bool paused() const;

    // Slows the guest down (migration auto-converge, like QEMU's cpu-throttle): while
    // `percent` (0..99, 0 = off) is set, a throttle thread kicks every vCPU once per
    // throttle_timeslice, and a vCPU thread whose run() ends kicked sleeps
    // percent/(100-percent) times the time it ran since its last sleep (capped at two
    // timeslices), so it runs about (100-percent) % of the wall-clock time. The sleep ends
    // early on request_stop, pause and any throttle change. Callable from any thread, also
    // before run(). Error(invalid_input) above 99.
    void set_throttle(unsigned percent);
    unsigned throttle() const { return throttle_.load(); }

    // One throttle period's running part (QEMU uses 10 ms). Long enough that the kick (an
    // exit to the root and back, 50 per second per vCPU) costs well under 1 % of it; short
    // enough that even at 99 % a guest stands still for only ~2 s at a stretch.
    static constexpr std::chrono::milliseconds throttle_timeslice{20};

  private:
    using Clock = std::chrono::steady_clock;

    void vcpu_loop(unsigned vcpu);
    void stop_all(VmStop stop);
    // Parks the calling vCPU thread while paused; false when the VM is stopping. A thread
    // that parked restarts `running_since` (time parked is not time run).
    bool park_if_paused(Clock::time_point& running_since);
    // After a kicked run: the throttle's sleep for a vCPU that has run since
    // `running_since`; restarts it.
    void throttle_sleep(Clock::time_point& running_since);
    // The throttle thread: kicks every running vCPU once per timeslice while throttled.
    void throttle_loop();
    // Under pause_mutex_: starts the throttle thread if a throttle is set and vCPUs run.
    void start_throttle_thread_locked();
    // Ends and joins the throttle thread (run() returning).
    void finish_throttle_thread();

    VmPlatform& platform_;
    VcpuBackend& backend_;
    unsigned vcpu_count_;
    std::atomic<bool> stopping_{false};

    // Pause handshake: pause_mutex_ guards paused_ and the counts; park_cv_ wakes parked
    // threads (resume, stop), parked_cv_ wakes pause() as threads park or exit.
    mutable std::mutex pause_mutex_;
    std::condition_variable park_cv_, parked_cv_;
    bool paused_ = false;
    bool started_ = false; // run() has started the vCPU threads
    unsigned parked_ = 0;
    unsigned exited_ = 0;

    // Throttle: written under pause_mutex_ (throttle_cv_ wakes sleeping vCPUs and the
    // throttle thread on a change, a pause or a stop), read without it.
    std::atomic<unsigned> throttle_{0};
    std::condition_variable throttle_cv_;
    bool finished_ = false;        // run() is returning: no new throttle thread
    std::jthread throttle_thread_; // started by the first throttle while vCPUs run
};

} // namespace godwit::vmm
