// The life of one VM as godwitd sees it (docs/vm-management.md, "States"):
//
//   defined --start--> starting --worker ready--> running --stop/kill--> stopping
//      ^                  |                          |                      |
//      |                  +------ worker exits ------+----------------------+--> stopped
//      +-- (create)                                                    start <--+
//
// Pure bookkeeping, no processes: VmManager feeds it what happened to the worker, and it
// decides the state, refuses operations the state does not allow (conflict errors naming
// the VM and what to do) and works out how the run ended.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "godwit/vmm/vm_result.hpp"

namespace godwit::daemon {

enum class VmState { defined, starting, running, stopping, stopped };
std::string_view to_string(VmState state);

// What godwitd learnt when it reaped a worker.
struct WorkerExit {
    int wait_status = 0;                   // from waitpid
    std::optional<vmm::VmResult> reported; // the worker's result file, if it wrote one
    std::string log_tail;                  // last non-empty line the worker printed
};

// What godwitd asked of the worker before it ended.
enum class KillCause {
    none,          // nothing: the VM ended by itself
    stop_request,  // SIGTERM (godwit vm stop)
    operator_kill, // SIGKILL (godwit vm kill)
    stop_timeout,  // SIGTERM ignored for too long, then SIGKILL
};

// How a run ended: the worker's own report when it gave one and godwitd did not kill it,
// otherwise what the wait status and the worker's last words say.
vmm::VmResult classify_worker_exit(const WorkerExit& exit, KillCause cause,
                                   std::chrono::seconds stop_timeout);

class VmLifecycle {
  public:
    using Clock = std::chrono::steady_clock;

    explicit VmLifecycle(std::string name) : name_(std::move(name)) {}

    VmState state() const { return state_; }
    bool active() const;
    pid_t pid() const { return pid_; }
    const std::optional<vmm::VmResult>& last_result() const { return last_result_; }
    std::chrono::system_clock::time_point started_at() const { return started_wall_; }
    // Active: time since start; stopped: how long the last run lasted; else zero.
    std::chrono::milliseconds uptime(Clock::time_point now = Clock::now()) const;
    KillCause kill_cause() const { return kill_cause_; }

    // godwitd found this result from an earlier daemon's run: stopped, or defined if none.
    void restore(std::optional<vmm::VmResult> result);
    // Throws conflict while a worker exists.
    void check_can_start() const;
    void started(pid_t pid); // -> starting
    void ready();            // starting -> running; ignored in other states
    // -> stopping. Throws conflict when no worker runs. Returns false when a stop was already
    // under way (nothing new to do).
    bool stop_requested();
    void kill_requested(); // -> stopping; conflict when no worker runs
    void stop_timed_out(); // stopping: the worker ignored SIGTERM and is being killed
    // -> stopped with the classified result, which it returns.
    const vmm::VmResult& exited(const WorkerExit& exit, std::chrono::seconds stop_timeout,
                                Clock::time_point now = Clock::now());
    void check_can_delete() const; // conflict while a worker exists

  private:
    [[noreturn]] void not_running(std::string_view operation) const;

    std::string name_;
    VmState state_ = VmState::defined;
    pid_t pid_ = 0;
    KillCause kill_cause_ = KillCause::none;
    Clock::time_point started_{}, stopped_{};
    std::chrono::system_clock::time_point started_wall_{};
    std::optional<vmm::VmResult> last_result_;
};

} // namespace godwit::daemon
