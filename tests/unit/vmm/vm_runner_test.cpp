#include "godwit/vmm/vm_runner.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <thread>

#include "test_support.hpp"

using namespace godwit::vmm;

namespace {
// Replays a script of exits per vCPU; with the script used up, run() blocks until kicked.
class ScriptedBackend final : public VcpuBackend {
  public:
    explicit ScriptedBackend(std::map<unsigned, std::deque<VcpuExit>> script)
        : script_(std::move(script)) {}

    VcpuExit run(unsigned vcpu, const IoAccess* completed) override {
        std::unique_lock lock(mutex_);
        if (completed) {
            completed_reads_[vcpu].push_back(completed->data);
        }
        auto& queue = script_[vcpu];
        if (!queue.empty() && !kicked_[vcpu]) {
            VcpuExit e = queue.front();
            queue.pop_front();
            return e;
        }
        cv_.wait(lock, [&] { return kicked_[vcpu]; });
        return {VcpuExit::Kind::kicked, {}};
    }
    void kick(unsigned vcpu) override {
        std::scoped_lock lock(mutex_);
        kicked_[vcpu] = true; // sticky: a later run() returns at once too
        cv_.notify_all();
    }
    std::vector<std::uint64_t> completed_reads(unsigned vcpu) {
        std::scoped_lock lock(mutex_);
        return completed_reads_[vcpu];
    }

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::map<unsigned, std::deque<VcpuExit>> script_;
    std::map<unsigned, bool> kicked_;
    std::map<unsigned, std::vector<std::uint64_t>> completed_reads_;
};

VcpuExit out(std::uint64_t port, std::uint8_t size, std::uint64_t value) {
    return {VcpuExit::Kind::port_io, {port, size, true, value}};
}
VcpuExit in(std::uint64_t port, std::uint8_t size) {
    return {VcpuExit::Kind::port_io, {port, size, false, 0}};
}

VmDefinition definition(unsigned vcpus) {
    VmDefinition d;
    d.name = "runner";
    d.vcpus = vcpus;
    d.memory_mib = 16;
    d.kernel = std::string(GODWIT_GUEST_DIR) + "/hello.elf";
    return d;
}
} // namespace

TEST(VmRunner, RunsUntilDebugExitAndFeedsReadsBack) {
    std::string console;
    VmPlatform vm(definition(2),
                  {{}, [&](std::uint8_t b) { console.push_back(static_cast<char>(b)); }, {}});
    // vCPU 0: read the CPU count from fw_cfg, print "ok\n", exit with code 0.
    // vCPU 1: idles (its script is empty) until the runner kicks it.
    ScriptedBackend backend(
        {{0,
          {out(0x510, 2, FwCfg::key_nb_cpus), in(0x511, 1), out(0x3f8, 1, 'o'), out(0x3f8, 1, 'k'),
           out(0x3f8, 1, '\n'), in(0xcfc, 4), out(0xf4, 4, 0), out(0x3f8, 1, 'X')}},
         {1, {{VcpuExit::Kind::halt, {}}}}});
    VmRunner runner(vm, backend, 2);
    VmStop stop = runner.run();
    EXPECT_EQ(stop.reason, VmStop::Reason::debug_exit);
    EXPECT_EQ(stop.result, 1u);
    EXPECT_EQ(console, "ok\n"); // nothing after the exit runs
    // The fw_cfg read returned 2 CPUs; the disabled PCI data port floats high.
    EXPECT_EQ(backend.completed_reads(0), (std::vector<std::uint64_t>{2, 0xffffffff}));
}

TEST(VmRunner, OutsideRamShutdownAndFailuresStopTheVm) {
    {
        VmPlatform vm(definition(1), {});
        ScriptedBackend backend({{0, {{VcpuExit::Kind::mmio, {0x2000000, 4, true, 1}}}}});
        VmStop stop = VmRunner(vm, backend, 1).run();
        EXPECT_EQ(stop.reason, VmStop::Reason::outside_ram);
        EXPECT_EQ(stop.address, 0x2000000u);
    }
    {
        VmPlatform vm(definition(2), {});
        ScriptedBackend backend({{1, {{VcpuExit::Kind::shutdown, {}}}}});
        EXPECT_EQ(VmRunner(vm, backend, 2).run().reason, VmStop::Reason::shutdown);
    }
    {
        VmPlatform vm(definition(1), {});
        ScriptedBackend backend({{0, {{VcpuExit::Kind::port_io, {0x3f8, 3, true, 0}}}}});
        VmStop stop = VmRunner(vm, backend, 1).run();
        EXPECT_EQ(stop.reason, VmStop::Reason::failed);
        EXPECT_NE(stop.detail.find("3 bytes"), std::string::npos) << stop.detail;
    }
}

TEST(VmRunner, RequestStopEndsAnIdleVm) {
    VmPlatform vm(definition(2), {});
    ScriptedBackend backend({});
    VmRunner runner(vm, backend, 2);
    std::thread stopper([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        runner.request_stop();
    });
    EXPECT_EQ(runner.run().reason, VmStop::Reason::requested);
    stopper.join();
}

namespace {
// A guest that never stops exiting: every run() counts one exit per vCPU (an idle HLT). A
// kick is consumed by the run() it ends, as the /dev/godwit backend does; a completed read
// is applied even by a kicked run (the VcpuBackend contract pause() relies on).
class BusyBackend final : public VcpuBackend {
  public:
    explicit BusyBackend(std::deque<VcpuExit> vcpu0_script = {})
        : script_(std::move(vcpu0_script)) {}
    VcpuExit run(unsigned vcpu, const IoAccess* completed) override {
        {
            std::scoped_lock lock(mutex_);
            ++inside_;
            if (completed) {
                completed_reads_.push_back(completed->data);
            }
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        std::scoped_lock lock(mutex_);
        --inside_;
        ++runs_[vcpu];
        if (kicked_[vcpu]) {
            kicked_[vcpu] = false;
            return {VcpuExit::Kind::kicked, {}};
        }
        if (vcpu == 0 && !script_.empty()) {
            VcpuExit e = script_.front();
            script_.pop_front();
            return e;
        }
        return {VcpuExit::Kind::halt, {}};
    }
    void kick(unsigned vcpu) override {
        std::scoped_lock lock(mutex_);
        kicked_[vcpu] = true;
    }
    std::uint64_t runs() {
        std::scoped_lock lock(mutex_);
        return runs_[0] + runs_[1];
    }
    int inside() {
        std::scoped_lock lock(mutex_);
        return inside_;
    }
    std::vector<std::uint64_t> completed_reads() {
        std::scoped_lock lock(mutex_);
        return completed_reads_;
    }
    std::size_t script_left() {
        std::scoped_lock lock(mutex_);
        return script_.size();
    }

  private:
    std::mutex mutex_;
    std::deque<VcpuExit> script_;
    std::map<unsigned, bool> kicked_;
    std::map<unsigned, std::uint64_t> runs_;
    std::vector<std::uint64_t> completed_reads_;
    int inside_ = 0;
};

template <typename Predicate>
bool eventually(Predicate predicate) {
    for (int i = 0; i < 2000; ++i) {
        if (predicate()) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return predicate();
}
} // namespace

TEST(VmRunner, PauseParksEveryVcpuAndResumeLetsThemRun) {
    VmPlatform vm(definition(2), {});
    BusyBackend backend;
    VmRunner runner(vm, backend, 2);
    std::jthread thread([&] { EXPECT_EQ(runner.run().reason, VmStop::Reason::requested); });
    ASSERT_TRUE(eventually([&] { return backend.runs() > 10; }));
    for (int round = 0; round < 3; ++round) {
        ASSERT_TRUE(runner.pause());
        EXPECT_TRUE(runner.paused());
        EXPECT_EQ(backend.inside(), 0);
        std::uint64_t frozen = backend.runs();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        EXPECT_EQ(backend.runs(), frozen) << "a vCPU ran while paused";
        runner.resume();
        EXPECT_FALSE(runner.paused());
        ASSERT_TRUE(eventually([&] { return backend.runs() > frozen + 10; }));
    }
    runner.request_stop();
}

TEST(VmRunner, PauseDeliversAPendingReadBeforeParking) {
    VmPlatform vm(definition(1), {});
    // Select fw_cfg's CPU count, then read it: the pause must not park between the read exit
    // and the run() that hands the value to the guest.
    BusyBackend backend({out(0x510, 2, FwCfg::key_nb_cpus), in(0x511, 1)});
    VmRunner runner(vm, backend, 1);
    std::jthread thread([&] { runner.run(); });
    ASSERT_TRUE(eventually([&] { return backend.script_left() == 0; }));
    ASSERT_TRUE(runner.pause());
    EXPECT_EQ(backend.completed_reads(), (std::vector<std::uint64_t>{1}));
    runner.request_stop();
}

TEST(VmRunner, PauseBeforeRunAndStopWhilePaused) {
    VmPlatform vm(definition(2), {});
    BusyBackend backend;
    VmRunner runner(vm, backend, 2);
    ASSERT_TRUE(runner.pause()); // nothing runs yet
    std::jthread stopper([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        EXPECT_EQ(backend.runs(), 0u) << "vCPUs ran although paused before run()";
        runner.request_stop();
    });
    EXPECT_EQ(runner.run().reason, VmStop::Reason::requested);
    EXPECT_FALSE(runner.pause()); // the VM has stopped: nothing to pause
}

namespace {
// The guest's work per second: BusyBackend runs (~200 µs each) over `window`.
double work_rate(BusyBackend& backend, std::chrono::milliseconds window) {
    auto t0 = std::chrono::steady_clock::now();
    std::uint64_t r0 = backend.runs();
    std::this_thread::sleep_for(window);
    std::uint64_t r1 = backend.runs();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return static_cast<double>(r1 - r0) / seconds;
}

// True once no vCPU runs for 60 ms: at 99 % a vCPU sleeps ~2 s after each 20 ms slice.
bool throttle_sleeping(BusyBackend& backend) {
    for (int i = 0; i < 40; ++i) {
        std::uint64_t before = backend.runs();
        std::this_thread::sleep_for(std::chrono::milliseconds(60));
        if (backend.runs() == before && backend.inside() == 0) {
            return true;
        }
    }
    return false;
}

// Declared after the thread that runs the VM: ends the VM on every way out of a test (a
// failed ASSERT included), so that thread's join cannot hang.
struct StopOnExit {
    VmRunner& runner;
    ~StopOnExit() { runner.request_stop(); }
};

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
} // namespace

TEST(VmRunner, ThrottleSlowsTheVcpusInProportion) {
    VmPlatform vm(definition(2), {});
    BusyBackend backend;
    VmRunner runner(vm, backend, 2);
    EXPECT_THROW(runner.set_throttle(100), godwit::Error);
    EXPECT_EQ(runner.throttle(), 0u);
    std::jthread thread([&] { EXPECT_EQ(runner.run().reason, VmStop::Reason::requested); });
    StopOnExit stop_on_exit{runner};
    ASSERT_TRUE(eventually([&] { return backend.runs() > 10; }));

    using std::chrono::milliseconds;
    const double full = work_rate(backend, milliseconds(400));
    runner.set_throttle(50);
    EXPECT_EQ(runner.throttle(), 50u);
    std::this_thread::sleep_for(milliseconds(40)); // past the first slice
    const double half = work_rate(backend, milliseconds(600)) / full;
    runner.set_throttle(90); // a cycle is now 20 ms run + 180 ms asleep
    std::this_thread::sleep_for(milliseconds(200));
    const double tenth = work_rate(backend, milliseconds(1000)) / full;
    runner.set_throttle(0); // wakes sleeping vCPUs: full speed at once
    const double again = work_rate(backend, milliseconds(300)) / full;
    std::printf("[ throttle ] unthrottled %.0f runs/s; share of it at 50 %%: %.2f, at 90 %%: "
                "%.2f, throttle off again: %.2f\n",
                full, half, tenth, again);
    ASSERT_GT(full, 500.0) << "the fake guest hardly ran unthrottled";
    // Bounds generous enough for a loaded 2-core machine; the expected shares are 0.5 and 0.1.
    EXPECT_LT(half, 0.8);
    EXPECT_GT(half, 0.2);
    EXPECT_LT(tenth, 0.5);
    EXPECT_LT(tenth, half);
    EXPECT_GT(again, 0.5);
    runner.request_stop();
}

TEST(VmRunner, PauseAndStopEndAThrottleSleepAtOnce) {
    VmPlatform vm(definition(1), {});
    BusyBackend backend;
    VmRunner runner(vm, backend, 1);
    runner.set_throttle(99); // before run(): the throttle thread starts with the vCPUs
    std::jthread thread([&] { EXPECT_EQ(runner.run().reason, VmStop::Reason::requested); });
    StopOnExit stop_on_exit{runner};
    ASSERT_TRUE(eventually([&] { return backend.runs() > 0; }));
    ASSERT_TRUE(throttle_sleeping(backend)) << "a 99 % throttle never put the vCPU to sleep";

    // The sleep lasts ~2 s; pause() must not wait it out.
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(runner.pause());
    const double pause_ms = ms_since(t0);
    EXPECT_LT(pause_ms, 300.0);
    EXPECT_EQ(backend.inside(), 0);
    // Paused stays paused while the throttle thread ticks, and across throttle changes.
    std::uint64_t frozen = backend.runs();
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    runner.set_throttle(50);
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    EXPECT_TRUE(runner.paused());
    EXPECT_EQ(backend.runs(), frozen) << "a vCPU ran while paused and throttled";
    runner.resume();
    ASSERT_TRUE(eventually([&] { return backend.runs() > frozen + 5; }));

    runner.set_throttle(99);
    ASSERT_TRUE(throttle_sleeping(backend));
    t0 = std::chrono::steady_clock::now();
    runner.request_stop();
    thread.join(); // run() returned: vCPU and throttle threads joined
    const double stop_ms = ms_since(t0);
    EXPECT_LT(stop_ms, 300.0);
    std::printf("[ throttle ] pause took %.1f ms, stop %.1f ms during a ~2 s throttle sleep\n",
                pause_ms, stop_ms);
}
