#include "vm_state.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "godwit/error.hpp"

using namespace godwit::daemon;
using godwit::ErrorCode;
using godwit::vmm::VmResult;
using namespace std::chrono_literals;

namespace {

// Wait statuses as waitpid reports them (the <sys/wait.h> encoding on Linux).
int exited(int code) {
    return (code & 0xff) << 8;
}
int signaled(int sig) {
    return sig & 0x7f;
}

template <typename F>
ErrorCode error_of(F f) {
    try {
        f();
    } catch (const godwit::Error& e) {
        return e.code();
    }
    return ErrorCode::internal; // "did not throw"
}

} // namespace

TEST(WaitStatusHelpers, MatchTheSystemMacros) {
    EXPECT_TRUE(WIFEXITED(exited(3)));
    EXPECT_EQ(WEXITSTATUS(exited(3)), 3);
    EXPECT_TRUE(WIFSIGNALED(signaled(SIGKILL)));
    EXPECT_EQ(WTERMSIG(signaled(SIGKILL)), SIGKILL);
}

TEST(VmLifecycle, StartRunStopEndsStoppedWithTheWorkersResult) {
    VmLifecycle vm("web-1");
    EXPECT_EQ(vm.state(), VmState::defined);
    EXPECT_FALSE(vm.active());
    vm.started(1234);
    EXPECT_EQ(vm.state(), VmState::starting);
    EXPECT_EQ(vm.pid(), 1234);
    vm.ready();
    EXPECT_EQ(vm.state(), VmState::running);
    EXPECT_TRUE(vm.stop_requested());
    EXPECT_EQ(vm.state(), VmState::stopping);
    EXPECT_FALSE(vm.stop_requested()) << "a second stop has nothing new to do";
    VmResult stopped{VmResult::Kind::stopped, 0, 0, 0, "stopped on request (SIGTERM)"};
    const VmResult& r = vm.exited({exited(0), stopped, ""}, 30s);
    EXPECT_EQ(r, stopped);
    EXPECT_EQ(vm.state(), VmState::stopped);
    EXPECT_EQ(vm.pid(), 0);
    EXPECT_EQ(vm.last_result(), stopped);
}

TEST(VmLifecycle, RefusesWhatTheStateDoesNotAllow) {
    VmLifecycle vm("web-1");
    EXPECT_EQ(error_of([&] { vm.stop_requested(); }), ErrorCode::conflict);
    EXPECT_EQ(error_of([&] { vm.kill_requested(); }), ErrorCode::conflict);
    vm.started(10);
    EXPECT_EQ(error_of([&] { vm.started(11); }), ErrorCode::conflict);
    EXPECT_EQ(error_of([&] { vm.check_can_delete(); }), ErrorCode::conflict);
    vm.ready();
    try {
        vm.check_can_start();
        FAIL() << "start of a running VM must be refused";
    } catch (const godwit::Error& e) {
        std::string what = e.what();
        EXPECT_NE(what.find("'web-1' is already running (worker pid 10)"), std::string::npos)
            << what;
    }
    vm.exited({exited(0), VmResult{VmResult::Kind::debug_exit, 0, 0, 0, "done"}, ""}, 30s);
    vm.check_can_delete();
    vm.check_can_start();
    vm.started(12); // a stopped VM starts again
    EXPECT_EQ(vm.state(), VmState::starting);
    EXPECT_EQ(vm.kill_cause(), KillCause::none) << "the previous run's requests are forgotten";
}

TEST(VmLifecycle, KillAndStopTimeoutAreTheDaemonsAccount) {
    VmLifecycle vm("db");
    vm.started(20);
    vm.ready();
    vm.kill_requested();
    EXPECT_EQ(vm.state(), VmState::stopping);
    // Even if a result file exists from the worker's last breath, SIGKILL is what happened.
    const VmResult& killed =
        vm.exited({signaled(SIGKILL), VmResult{VmResult::Kind::stopped, 0, 0, 0, "x"}, ""}, 30s);
    EXPECT_EQ(killed.kind, VmResult::Kind::killed);
    EXPECT_NE(killed.message.find("godwit vm kill"), std::string::npos);

    vm.started(21);
    vm.ready();
    vm.stop_requested();
    vm.stop_timed_out();
    EXPECT_EQ(vm.kill_cause(), KillCause::stop_timeout);
    const VmResult& escalated = vm.exited({signaled(SIGKILL), std::nullopt, ""}, 7s);
    EXPECT_EQ(escalated.kind, VmResult::Kind::killed);
    EXPECT_NE(escalated.message.find("did not stop within 7 s"), std::string::npos)
        << escalated.message;
}

TEST(VmLifecycle, TimeoutWithoutAStopDoesNotEscalate) {
    VmLifecycle vm("db");
    vm.started(30);
    vm.stop_timed_out(); // a stale timer: nothing asked for a stop
    EXPECT_EQ(vm.kill_cause(), KillCause::none);
}

TEST(VmLifecycle, ReadyOnlyMovesAStartingVm) {
    VmLifecycle vm("a");
    vm.ready();
    EXPECT_EQ(vm.state(), VmState::defined);
    vm.started(5);
    vm.stop_requested();
    vm.ready(); // the ready byte arrives after a stop request: still stopping
    EXPECT_EQ(vm.state(), VmState::stopping);
}

TEST(VmLifecycle, RestoreUsesTheLastRunsResult) {
    VmLifecycle fresh("a");
    fresh.restore(std::nullopt);
    EXPECT_EQ(fresh.state(), VmState::defined);
    VmLifecycle ran("b");
    ran.restore(VmResult{VmResult::Kind::outside_ram, 0, 0x9000000, 0, "touched 0x9000000"});
    EXPECT_EQ(ran.state(), VmState::stopped);
    EXPECT_EQ(ran.last_result()->address, 0x9000000u);
    EXPECT_EQ(ran.uptime(), std::chrono::milliseconds(0)) << "no run since this daemon started";
}

TEST(VmLifecycle, UptimeWhileActiveAndDurationAfter) {
    VmLifecycle vm("a");
    vm.started(1);
    auto t0 = VmLifecycle::Clock::now();
    EXPECT_GE(vm.uptime(t0 + 5s), 5s);
    vm.exited({exited(0), std::nullopt, ""}, 30s, t0 + 2s);
    EXPECT_GE(vm.uptime(t0 + 100s), 1900ms);
    EXPECT_LE(vm.uptime(t0 + 100s), 2s);
}

TEST(ClassifyWorkerExit, WithoutAReportTheStatusAndLogSpeak) {
    using Kind = VmResult::Kind;
    VmResult r = classify_worker_exit(
        {exited(5), std::nullopt, "godwit-vm-worker: failed: /dev/godwit: No such file"},
        KillCause::none, 30s);
    EXPECT_EQ(r.kind, Kind::failed);
    EXPECT_EQ(r.error_code, 5);
    EXPECT_NE(r.message.find("/dev/godwit"), std::string::npos);

    r = classify_worker_exit({exited(0), std::nullopt, ""}, KillCause::none, 30s);
    EXPECT_EQ(r.kind, Kind::failed);
    EXPECT_NE(r.message.find("without reporting a result"), std::string::npos) << r.message;

    r = classify_worker_exit({signaled(SIGSEGV), std::nullopt, "last words"}, KillCause::none, 30s);
    EXPECT_EQ(r.kind, Kind::failed);
    EXPECT_EQ(r.error_code, static_cast<int>(ErrorCode::internal));
    EXPECT_NE(r.message.find("SIGSEGV"), std::string::npos) << r.message;

    // Someone else's SIGKILL (the OOM killer, an administrator): killed, and by what.
    r = classify_worker_exit({signaled(SIGKILL), std::nullopt, ""}, KillCause::none, 30s);
    EXPECT_EQ(r.kind, Kind::killed);
    EXPECT_NE(r.message.find("SIGKILL"), std::string::npos) << r.message;

    // SIGTERM that arrived before the worker could take it: the stop still succeeded.
    r = classify_worker_exit({signaled(SIGTERM), std::nullopt, ""}, KillCause::stop_request, 30s);
    EXPECT_EQ(r.kind, Kind::stopped);
    r = classify_worker_exit({signaled(SIGTERM), std::nullopt, ""}, KillCause::none, 30s);
    EXPECT_EQ(r.kind, Kind::failed) << "a SIGTERM godwitd did not send is not a stop";
}

TEST(ClassifyWorkerExit, TheWorkersReportWinsWhenNothingWasKilled) {
    VmResult isolation{VmResult::Kind::outside_ram, 0, 0x9000000, 0, "touched 0x9000000"};
    EXPECT_EQ(classify_worker_exit({exited(1), isolation, "noise"}, KillCause::none, 30s),
              isolation);
    EXPECT_EQ(classify_worker_exit({exited(1), isolation, ""}, KillCause::stop_request, 30s),
              isolation)
        << "a guest that ended on its own while a stop was under way keeps its reason";
}

TEST(VmStateNames, AreTheDocumentedOnes) {
    EXPECT_EQ(to_string(VmState::defined), "defined");
    EXPECT_EQ(to_string(VmState::starting), "starting");
    EXPECT_EQ(to_string(VmState::running), "running");
    EXPECT_EQ(to_string(VmState::stopping), "stopping");
    EXPECT_EQ(to_string(VmState::stopped), "stopped");
}
