// The files of one VM's run in godwitd's run directory (docs/vm-management.md), shared by
// godwitd and godwit-vm-worker so both name them the same way:
//   DIR/console.log         COM1 of the current or last run
//   DIR/result.json         how the last run ended (vm_result.hpp)
//   DIR/worker.log          the worker's own messages
//   DIR/worker.pid          present while a worker runs
//   DIR/save-request        `vm save`: the target path (SIGUSR2), .result the outcome (JSON)
//   DIR/migrate-request     `vm migrate`: destination and limits (JSON, SIGRTMIN)
//   DIR/migration.json      the migration's state, progress and final report (JSON)
#pragma once

#include <filesystem>

namespace godwit::vmm {

struct VmRunFiles {
    std::filesystem::path dir;

    std::filesystem::path console() const { return dir / "console.log"; }
    std::filesystem::path result() const { return dir / "result.json"; }
    std::filesystem::path worker_log() const { return dir / "worker.log"; }
    std::filesystem::path worker_pid() const { return dir / "worker.pid"; }
    std::filesystem::path save_request() const { return dir / "save-request"; }
    std::filesystem::path save_outcome() const { return dir / "save-request.result"; }
    std::filesystem::path migrate_request() const { return dir / "migrate-request"; }
    std::filesystem::path migration_status() const { return dir / "migration.json"; }
};

} // namespace godwit::vmm
