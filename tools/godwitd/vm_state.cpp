#include "vm_state.hpp"

#include <sys/wait.h>

#include <cstring>

#include <fmt/format.h>

#include "godwit/error.hpp"

namespace godwit::daemon {

std::string_view to_string(VmState state) {
    switch (state) {
    case VmState::defined:
        return "defined";
    case VmState::starting:
        return "starting";
    case VmState::running:
        return "running";
    case VmState::stopping:
        return "stopping";
    case VmState::stopped:
        return "stopped";
    }
    return "unknown";
}

vmm::VmResult classify_worker_exit(const WorkerExit& exit, KillCause cause,
                                   std::chrono::seconds stop_timeout) {
    using Kind = vmm::VmResult::Kind;
    const int status = exit.wait_status;
    const bool sigkilled = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    vmm::VmResult r;
    if (sigkilled && cause == KillCause::operator_kill) {
        r.kind = Kind::killed;
        r.message = "killed on request (godwit vm kill)";
        return r;
    }
    if (sigkilled && cause == KillCause::stop_timeout) {
        r.kind = Kind::killed;
        r.message =
            fmt::format("did not stop within {} s of SIGTERM; killed", stop_timeout.count());
        return r;
    }
    if (exit.reported) {
        return *exit.reported; // the worker's own account is the precise one
    }
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM && cause == KillCause::stop_request) {
        r.kind = Kind::stopped; // SIGTERM reached the worker before it could handle it
        r.message = "stopped on request before the VM ran";
        return r;
    }
    r.kind = Kind::failed;
    if (WIFSIGNALED(status)) {
        const char* name = ::sigabbrev_np(WTERMSIG(status));
        r.kind = sigkilled ? Kind::killed : Kind::failed;
        r.error_code = sigkilled ? 0 : static_cast<int>(ErrorCode::internal);
        r.message = fmt::format("worker died of SIG{} ({})", name ? name : "?",
                                ::strsignal(WTERMSIG(status)));
    } else {
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        r.error_code = code > 0 ? code : static_cast<int>(ErrorCode::internal);
        r.message =
            exit.log_tail.empty()
                ? fmt::format("worker exited with status {} without reporting a result", code)
                : exit.log_tail;
    }
    return r;
}

bool VmLifecycle::active() const {
    return state_ == VmState::starting || state_ == VmState::running || state_ == VmState::stopping;
}

std::chrono::milliseconds VmLifecycle::uptime(Clock::time_point now) const {
    using std::chrono::duration_cast;
    using std::chrono::milliseconds;
    if (active()) {
        return duration_cast<milliseconds>(now - started_);
    }
    if (state_ == VmState::stopped && started_ != Clock::time_point{}) {
        return duration_cast<milliseconds>(stopped_ - started_);
    }
    return milliseconds{0};
}

void VmLifecycle::restore(std::optional<vmm::VmResult> result) {
    last_result_ = std::move(result);
    state_ = last_result_ ? VmState::stopped : VmState::defined;
}

void VmLifecycle::check_can_start() const {
    if (active()) {
        throw Error(ErrorCode::conflict,
                    fmt::format("VM '{}' is already {} (worker pid {}); `godwit vm stop {}` first",
                                name_, to_string(state_), pid_, name_));
    }
}

void VmLifecycle::started(pid_t pid) {
    check_can_start();
    state_ = VmState::starting;
    pid_ = pid;
    kill_cause_ = KillCause::none;
    started_ = Clock::now();
    started_wall_ = std::chrono::system_clock::now();
}

void VmLifecycle::ready() {
    if (state_ == VmState::starting) {
        state_ = VmState::running;
    }
}

void VmLifecycle::not_running(std::string_view operation) const {
    throw Error(ErrorCode::conflict, fmt::format("cannot {} VM '{}': it is {}, not running",
                                                 operation, name_, to_string(state_)));
}

bool VmLifecycle::stop_requested() {
    if (!active()) {
        not_running("stop");
    }
    if (state_ == VmState::stopping) {
        return false;
    }
    state_ = VmState::stopping;
    kill_cause_ = KillCause::stop_request;
    return true;
}

void VmLifecycle::kill_requested() {
    if (!active()) {
        not_running("kill");
    }
    state_ = VmState::stopping;
    kill_cause_ = KillCause::operator_kill;
}

void VmLifecycle::stop_timed_out() {
    if (state_ == VmState::stopping && kill_cause_ == KillCause::stop_request) {
        kill_cause_ = KillCause::stop_timeout;
    }
}

const vmm::VmResult& VmLifecycle::exited(const WorkerExit& exit, std::chrono::seconds stop_timeout,
                                         Clock::time_point now) {
    last_result_ = classify_worker_exit(exit, kill_cause_, stop_timeout);
    state_ = VmState::stopped;
    pid_ = 0;
    stopped_ = now;
    return *last_result_;
}

void VmLifecycle::check_can_delete() const {
    if (active()) {
        throw Error(ErrorCode::conflict,
                    fmt::format("VM '{}' is {} (worker pid {}); stop it first with `godwit vm "
                                "stop {}`",
                                name_, to_string(state_), pid_, name_));
    }
}

} // namespace godwit::daemon
