// Minimal test-and-test-and-set spinlock for the hypervisor (interrupts stay as they are:
// the hypervisor runs with interrupts disabled).
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

class SpinLock {
  public:
    void lock() {
        while (__atomic_exchange_n(&locked_, true, __ATOMIC_ACQUIRE)) {
            while (__atomic_load_n(&locked_, __ATOMIC_RELAXED)) {
                asm volatile("pause");
            }
        }
    }
    void unlock() { __atomic_store_n(&locked_, false, __ATOMIC_RELEASE); }

  private:
    bool locked_ = false;
};

class SpinLockGuard {
  public:
    explicit SpinLockGuard(SpinLock& l) : lock_(l) { lock_.lock(); }
    ~SpinLockGuard() { lock_.unlock(); }
    SpinLockGuard(const SpinLockGuard&) = delete;
    SpinLockGuard& operator=(const SpinLockGuard&) = delete;

  private:
    SpinLock& lock_;
};

} // namespace godwit::hv
