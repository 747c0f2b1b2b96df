#include "godwit/vmm/vm_runner.hpp"

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "godwit/error.hpp"

namespace godwit::vmm {

VmRunner::VmRunner(VmPlatform& platform, VcpuBackend& backend, unsigned vcpu_count)
    : platform_(platform), backend_(backend), vcpu_count_(vcpu_count) {
    if (vcpu_count == 0) {
        throw Error(ErrorCode::invalid_input, "a VM needs at least one vCPU");
    }
}

void VmRunner::stop_all(VmStop stop) {
    platform_.request_stop(std::move(stop)); // the first reason wins
    {
        // Under the pause lock so a parked thread or a waiting pause() cannot miss it.
        std::scoped_lock lock(pause_mutex_);
        stopping_.store(true);
        park_cv_.notify_all();
        parked_cv_.notify_all();
        throttle_cv_.notify_all();
    }
    for (unsigned v = 0; v < vcpu_count_; ++v) {
        backend_.kick(v);
    }
}

void VmRunner::request_stop() {
    stop_all({.reason = VmStop::Reason::requested});
}

bool VmRunner::pause() {
    std::unique_lock lock(pause_mutex_);
    paused_ = true;
    throttle_cv_.notify_all(); // a vCPU in its throttle sleep wakes up and parks
    lock.unlock();
    // Kicks are sticky, so a vCPU between runs returns from its next run() at once.
    for (unsigned v = 0; v < vcpu_count_; ++v) {
        backend_.kick(v);
    }
    lock.lock();
    parked_cv_.wait(
        lock, [&] { return stopping_.load() || !started_ || parked_ + exited_ == vcpu_count_; });
    // A VM whose threads have not started yet (pause before run) counts as paused too.
    return !stopping_.load();
}

void VmRunner::resume() {
    std::scoped_lock lock(pause_mutex_);
    paused_ = false;
    park_cv_.notify_all();
}

bool VmRunner::paused() const {
    std::scoped_lock lock(pause_mutex_);
    return paused_;
}

bool VmRunner::park_if_paused(Clock::time_point& running_since) {
    std::unique_lock lock(pause_mutex_);
    if (!paused_) {
        return !stopping_.load();
    }
    ++parked_;
    parked_cv_.notify_all();
    park_cv_.wait(lock, [&] { return !paused_ || stopping_.load(); });
    --parked_;
    running_since = Clock::now();
    return !stopping_.load();
}

void VmRunner::set_throttle(unsigned percent) {
    if (percent > 99) {
        throw Error(ErrorCode::invalid_input,
                    "a vCPU throttle is 0 to 99 percent, not " + std::to_string(percent));
    }
    std::scoped_lock lock(pause_mutex_);
    throttle_.store(percent);
    throttle_cv_.notify_all(); // sleeping vCPUs and the throttle thread see the change
    start_throttle_thread_locked();
}

void VmRunner::start_throttle_thread_locked() {
    if (throttle_.load() != 0 && started_ && !finished_ && !throttle_thread_.joinable()) {
        throttle_thread_ = std::jthread([this] { throttle_loop(); });
    }
}

void VmRunner::finish_throttle_thread() {
    std::jthread thread;
    {
        std::scoped_lock lock(pause_mutex_);
        finished_ = true;
        throttle_cv_.notify_all();
        thread = std::move(throttle_thread_);
    }
    // `thread` joins here, outside the lock its loop needs to see finished_.
}

void VmRunner::throttle_loop() {
    std::unique_lock lock(pause_mutex_);
    auto done = [&] { return finished_ || stopping_.load(); };
    Clock::time_point next = Clock::now() + throttle_timeslice;
    while (!done()) {
        if (throttle_.load() == 0) {
            throttle_cv_.wait(lock, [&] { return done() || throttle_.load() != 0; });
            next = Clock::now() + throttle_timeslice;
            continue;
        }
        if (throttle_cv_.wait_until(lock, next, [&] { return done() || throttle_.load() == 0; })) {
            continue;
        }
        // Fixed ticks, but no burst of kicks after this thread was held up.
        next += throttle_timeslice;
        if (const Clock::time_point now = Clock::now(); next < now) {
            next = now + throttle_timeslice;
        }
        if (paused_) {
            continue; // parked vCPUs stay parked; kicks would only end their first run
        }
        lock.unlock();
        // A vCPU that is still asleep keeps the kick for its next run, which then returns
        // at once having run ~0 ms, so it sleeps ~0 ms: one spare exit, no extra throttling.
        for (unsigned v = 0; v < vcpu_count_; ++v) {
            backend_.kick(v);
        }
        lock.lock();
    }
}

void VmRunner::throttle_sleep(Clock::time_point& running_since) {
    const unsigned percent = throttle_.load();
    const Clock::time_point now = Clock::now();
    // Proportional to the time actually run, so a late or early kick does not change the
    // duty cycle; capped so the first kick after a long unthrottled stretch is no outlier.
    const Clock::duration ran =
        std::min<Clock::duration>(now - running_since, 2 * throttle_timeslice);
    const Clock::duration sleep =
        ran * static_cast<Clock::rep>(percent) / static_cast<Clock::rep>(100 - percent);
    {
        // On the pause lock: a pause, a stop or a throttle change ends the sleep at once, so
        // pause() never waits out a sleep (the thread parks as soon as it wakes).
        std::unique_lock lock(pause_mutex_);
        throttle_cv_.wait_for(lock, sleep, [&] {
            return paused_ || stopping_.load() || throttle_.load() != percent;
        });
    }
    running_since = Clock::now();
}

void VmRunner::vcpu_loop(unsigned vcpu) {
    std::optional<IoAccess> completed_read;
    Clock::time_point running_since = Clock::now(); // since the last park or throttle sleep
    try {
        while (!stopping_.load()) {
            // Park only with no read pending: its data must reach the guest register first
            // (the pause kick makes that run() return at once after applying it).
            if (!completed_read && !park_if_paused(running_since)) {
                break;
            }
            if (completed_read && paused()) {
                backend_.kick(vcpu); // our pause kick may have ended an earlier run already
            }
            VcpuExit exit = backend_.run(vcpu, completed_read ? &*completed_read : nullptr);
            completed_read.reset();
            switch (exit.kind) {
            case VcpuExit::Kind::port_io:
                platform_.handle_port_io(exit.access);
                break;
            case VcpuExit::Kind::mmio:
                platform_.handle_mmio(exit.access);
                break;
            case VcpuExit::Kind::unhandled_memory:
                platform_.request_stop(
                    {.reason = VmStop::Reason::outside_ram, .address = exit.access.address});
                break;
            case VcpuExit::Kind::shutdown:
                stop_all({.reason = VmStop::Reason::shutdown});
                return;
            case VcpuExit::Kind::halt:
            case VcpuExit::Kind::kicked:
                break;
            }
            if ((exit.kind == VcpuExit::Kind::port_io || exit.kind == VcpuExit::Kind::mmio) &&
                !exit.access.is_write) {
                completed_read = exit.access;
            }
            if (platform_.stop()) {
                stop_all(*platform_.stop()); // a device ended the VM: wake the other vCPUs
                return;
            }
            // A kicked run has applied any completed read, so nothing is half-done while the
            // thread sleeps (and it may park right after).
            if (exit.kind == VcpuExit::Kind::kicked && throttle_.load() != 0) {
                throttle_sleep(running_since);
            }
        }
    } catch (const std::exception& e) {
        stop_all({.reason = VmStop::Reason::failed,
                  .detail = "vCPU " + std::to_string(vcpu) + ": " + e.what()});
    }
}

VmStop VmRunner::run() {
    {
        std::scoped_lock lock(pause_mutex_);
        started_ = true;
        start_throttle_thread_locked(); // a throttle set before run()
    }
    struct ThrottleThreadEnd {
        VmRunner& runner;
        ~ThrottleThreadEnd() { runner.finish_throttle_thread(); }
    } throttle_end{*this}; // after the vCPU threads, on every way out
    std::vector<std::jthread> threads;
    for (unsigned v = 0; v < vcpu_count_; ++v) {
        threads.emplace_back([this, v] {
            vcpu_loop(v);
            std::scoped_lock lock(pause_mutex_);
            ++exited_;
            parked_cv_.notify_all();
        });
    }
    threads.clear(); // join every vCPU thread
    auto stop = platform_.stop();
    return stop ? *stop : VmStop{.reason = VmStop::Reason::requested};
}

} // namespace godwit::vmm
