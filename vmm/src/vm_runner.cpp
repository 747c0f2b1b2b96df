#include "godwit/vmm/vm_runner.hpp"

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

bool VmRunner::park_if_paused() {
    std::unique_lock lock(pause_mutex_);
    if (!paused_) {
        return !stopping_.load();
    }
    ++parked_;
    parked_cv_.notify_all();
    park_cv_.wait(lock, [&] { return !paused_ || stopping_.load(); });
    --parked_;
    return !stopping_.load();
}

void VmRunner::vcpu_loop(unsigned vcpu) {
    std::optional<IoAccess> completed_read;
    try {
        while (!stopping_.load()) {
            // Park only with no read pending: its data must reach the guest register first
            // (the pause kick makes that run() return at once after applying it).
            if (!completed_read && !park_if_paused()) {
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
    }
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
