// A synthetic VM for migration tests and the benchmark: a memory region, writer threads that
// dirty random pages at a set rate (slowed by the throttle), a software dirty log, pause and
// resume, and vCPU/device state blobs. It implements the engine's interfaces the way the VMM
// will for real VMs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "godwit/error.hpp"
#include "godwit/migration/migration.hpp"

namespace godwit::migration::testing {

class SyntheticGuest final : public GuestMemory,
                             public DirtyLog,
                             public VmControl,
                             public StateProvider {
  public:
    SyntheticGuest(std::uint64_t pages, double zero_fraction, unsigned seed)
        : memory_(static_cast<std::uint8_t*>(std::calloc(pages, page_size))),
          size_(pages * page_size), dirty_((pages + 63) / 64) {
        // calloc of a large region maps zero pages lazily, like fresh guest RAM.
        if (!memory_)
            throw std::bad_alloc();
        if (zero_fraction >= 1.0)
            return;
        std::mt19937_64 rng(seed);
        for (std::uint64_t p = 0; p < pages; ++p) {
            auto* page = memory_.get() + p * page_size;
            if (static_cast<double>(rng() % 1000) / 1000.0 < zero_fraction) {
                std::memset(page, 0, page_size); // touched, as a running guest's RAM is
                continue;
            }
            for (std::uint32_t i = 0; i < page_size; i += 8) {
                std::uint64_t v = rng();
                std::memcpy(page + i, &v, 8);
            }
        }
    }
    ~SyntheticGuest() override { stop_writers(); }

    // Starts `threads` writers dirtying `pages_per_second` pages in total.
    void start_writers(unsigned threads, double pages_per_second) {
        for (unsigned t = 0; t < threads; ++t) {
            writers_.emplace_back([this, t, threads, pages_per_second] {
                writer_loop(t, pages_per_second / threads);
            });
        }
    }
    void stop_writers() {
        stop_ = true;
        cv_.notify_all();
        for (auto& w : writers_)
            w.join();
        writers_.clear();
    }
    std::uint64_t writes() const { return writes_.load(); }
    bool paused() const { return paused_.load(); }

    // GuestMemory
    std::uint64_t page_count() const override { return size_ / page_size; }
    void read_page(std::uint64_t pfn, std::uint8_t* out) const override {
        std::memcpy(out, memory_.get() + pfn * page_size, page_size);
    }
    void write_page(std::uint64_t pfn, const std::uint8_t* in) override {
        std::memcpy(memory_.get() + pfn * page_size, in, page_size);
    }
    // DirtyLog
    void enable() override { logging_ = true; }
    void disable() override { logging_ = false; }
    void fetch_and_clear(std::vector<std::uint64_t>& bitmap) override {
        bitmap.resize(dirty_.size());
        for (std::size_t i = 0; i < dirty_.size(); ++i)
            bitmap[i] = dirty_[i].exchange(0);
    }
    // VmControl
    void pause() override {
        std::unique_lock lock(mutex_);
        paused_ = true;
        // Wait until no writer is in the middle of a write: the guest is really stopped.
        cv_.wait(lock, [this] { return active_ == 0; });
    }
    void resume() override {
        {
            std::lock_guard lock(mutex_);
            paused_ = false;
        }
        cv_.notify_all();
    }
    void set_throttle(unsigned percent) override { throttle_ = percent; }
    unsigned throttle() const { return throttle_; }
    // StateProvider
    std::vector<StateBlob> save_state() override {
        StateBlob cpu{"vcpu", "0", std::vector<std::uint8_t>(64)};
        std::uint64_t w = writes_.load();
        std::memcpy(cpu.data.data(), &w, 8);
        return {cpu, StateBlob{"device", "uart0", {1, 2, 3, 4}}};
    }
    void restore_state(const std::vector<StateBlob>& blobs) override { restored_ = blobs; }
    std::vector<StateBlob> restored_;

  private:
    void writer_loop(unsigned id, double rate) {
        std::mt19937_64 rng(1000 + id);
        auto next = std::chrono::steady_clock::now();
        const auto interval = rate > 0 ? std::chrono::duration<double>(1.0 / rate)
                                       : std::chrono::duration<double>(1.0);
        while (!stop_) {
            {
                std::unique_lock lock(mutex_);
                cv_.wait(lock, [this] { return !paused_ || stop_; });
                if (stop_)
                    break;
                ++active_;
            }
            if (rate > 0) {
                std::uint64_t pfn = rng() % page_count();
                std::uint64_t v = rng() | 1; // never zero: a dirtied page is not a zero page
                std::memcpy(memory_.get() + pfn * page_size + (rng() % (page_size / 8)) * 8, &v, 8);
                if (logging_)
                    dirty_[pfn / 64].fetch_or(1ull << (pfn % 64));
                ++writes_;
            }
            {
                std::lock_guard lock(mutex_);
                --active_;
            }
            cv_.notify_all();
            // Pacing; the throttle stretches each interval (the guest gets less CPU).
            unsigned t = throttle_;
            next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                interval * (100.0 / (100 - std::min(t, 99u))));
            auto now = std::chrono::steady_clock::now();
            if (next > now)
                std::this_thread::sleep_until(next);
            else if (now - next > std::chrono::milliseconds(50))
                next = now; // do not burst after a stall
        }
    }

    struct FreeDeleter {
        void operator()(std::uint8_t* p) const { std::free(p); }
    };
    std::unique_ptr<std::uint8_t, FreeDeleter> memory_;
    std::uint64_t size_;
    std::vector<std::atomic<std::uint64_t>> dirty_;
    std::atomic<bool> logging_{false}, stop_{false}, paused_{false};
    std::atomic<unsigned> throttle_{0};
    std::atomic<std::uint64_t> writes_{0};
    std::mutex mutex_;
    std::condition_variable cv_;
    unsigned active_ = 0;
    std::vector<std::thread> writers_;
};

// Destination side: memory comes into existence from the stream's header.
class SyntheticIncomingVm final : public IncomingVm {
  public:
    explicit SyntheticIncomingVm(std::uint64_t max_pages = 1ull << 20) : max_pages_(max_pages) {}
    GuestMemory& create(const std::string&, std::uint64_t pages) override {
        if (pages > max_pages_)
            throw Error(ErrorCode::conflict, "not enough memory on this host for the VM");
        if (guest_ && guest_->page_count() == pages)
            return *guest_;                                       // prepared in advance
        guest_ = std::make_unique<SyntheticGuest>(pages, 1.0, 0); // all zero
        return *guest_;
    }
    // Allocates and touches the RAM before the stream arrives, as a destination VMM started
    // with its memory configured does (the benchmark measures the engine, not page faults).
    void prepare(std::uint64_t pages) {
        guest_ = std::make_unique<SyntheticGuest>(pages, 1.0, 0);
        std::vector<std::uint8_t> zero(page_size, 0);
        for (std::uint64_t p = 0; p < pages; ++p)
            guest_->write_page(p, zero.data());
    }
    void restore(const std::vector<StateBlob>& state) override { guest_->restore_state(state); }
    void start() override { started_ = true; }
    void discard() override {
        guest_.reset();
        discarded_ = true;
    }
    SyntheticGuest* guest() { return guest_.get(); }
    bool started_ = false, discarded_ = false;

  private:
    std::uint64_t max_pages_;
    std::unique_ptr<SyntheticGuest> guest_;
};

} // namespace godwit::migration::testing
