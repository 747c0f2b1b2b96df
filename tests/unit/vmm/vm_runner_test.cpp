#include "godwit/vmm/vm_runner.hpp"

#include <condition_variable>
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
