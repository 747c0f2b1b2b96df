// godwitd's side of live and quick migration (docs/live-migration.md). The VM's worker does
// the work — it owns the guest memory and the partition — so godwitd only passes requests
// on and keeps the books:
//   source:      `vm migrate` writes RUN_DIR/NAME/migrate-request and signals the worker
//                (SIGRTMIN; SIGRTMIN+1 cancels); the worker reports in migration.json; a VM
//                whose worker ends "migrated to ..." is forgotten here (it runs there now).
//   destination: the migration listener's connections each get a new worker (they are
//                "incoming" until it asks to be adopted with the VM's definition); a VM
//                that never started running here is forgotten when its worker ends, so a
//                failed migration leaves nothing behind.
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "godwit/error.hpp"
#include "godwit/vmm/migration_control.hpp"
#include "vm_manager.hpp"
#include "worker_process.hpp"

namespace godwit::daemon {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

// Receiving workers hold a VM's whole memory each; more at once than this is refused.
constexpr std::size_t max_incoming = 4;

control::VmMigration to_message(const std::string& name, const vmm::MigrationStatus& s) {
    control::VmMigration out;
    out.set_name(name);
    out.set_destination(s.destination);
    out.set_state(s.state);
    out.set_live(s.live);
    if (!s.progress.is_null()) {
        out.set_progress_json(s.progress.dump());
    }
    if (!s.report.is_null()) {
        out.set_report_json(s.report.dump());
    }
    out.set_error(s.error);
    return out;
}

fs::path incoming_dir(const fs::path& run_root) {
    return run_root / ".incoming";
}

} // namespace

control::VmMigration VmManager::migrate(const control::VmMigrateRequest& request) {
    Vm& vm = find(request.name());
    const std::string& name = vm.definition.name;
    if (vm.life.state() != VmState::running || vm.incoming) {
        throw Error(ErrorCode::conflict,
                    fmt::format("VM '{}' is {}, not running: only a running VM can be migrated",
                                name, to_string(vm.life.state())));
    }
    const vmm::VmRunFiles run = files(name);
    if (vmm::read_migration_status(run.migration_status()).in_flight()) {
        throw Error(ErrorCode::conflict,
                    fmt::format("VM '{}' is being migrated already (`godwit vm migrate-cancel {}` "
                                "to stop that)",
                                name, name));
    }
    vmm::MigrateRequest out;
    out.destination = vmm::parse_destination(request.destination());
    out.live = request.live();
    if (request.downtime_limit_ms() < 0) {
        throw Error(ErrorCode::usage, "the downtime limit cannot be negative");
    }
    out.downtime_limit_ms = request.downtime_limit_ms();
    out.bandwidth_bytes_per_s = request.bandwidth_bytes_per_s();
    out.tls_dir = options_.tls_dir;
    vmm::tls_from_dir(options_.tls_dir); // no credentials: say so now, not from the worker
    {
        std::ofstream file(run.migrate_request(), std::ios::trunc);
        file << vmm::to_json(out).dump() << '\n';
        if (!file.flush()) {
            throw Error(ErrorCode::io, "writing " + run.migrate_request().string());
        }
    }
    vmm::MigrationStatus status;
    status.state = "starting";
    status.destination = out.destination.to_string();
    status.live = out.live;
    vmm::write_migration_status(run.migration_status(), status);
    departed_.erase(name);
    ::kill(vm.life.pid(), SIGRTMIN);
    spdlog::info("VM '{}': {} migration to {} requested (worker pid {})", name,
                 out.live ? "live" : "quick", status.destination, vm.life.pid());
    return to_message(name, status);
}

control::VmMigration VmManager::migrate_cancel(const std::string& name) {
    Vm& vm = find(name);
    vmm::MigrationStatus status = vmm::read_migration_status(files(name).migration_status());
    if (!status.in_flight() || !vm.life.active()) {
        throw Error(ErrorCode::conflict,
                    fmt::format("VM '{}' is not being migrated (its last migration: {})", name,
                                status.state));
    }
    ::kill(vm.life.pid(), SIGRTMIN + 1);
    spdlog::info("VM '{}': migration to {} cancelled by request", name, status.destination);
    return to_message(name, status);
}

control::VmMigration VmManager::migration_status(const std::string& name) {
    check_available();
    auto it = vms_.find(name);
    if (it == vms_.end()) {
        if (auto gone = departed_.find(name); gone != departed_.end()) {
            return gone->second;
        }
        find(name); // throws the usual "no VM named ..."
    }
    Vm& vm = *it->second;
    vmm::MigrationStatus status = vmm::read_migration_status(files(name).migration_status());
    if (status.in_flight() && !vm.life.active()) {
        // The worker ended without finishing its status (killed, crashed).
        status.state = "failed";
        status.error = fmt::format("the VM's worker ended during the migration ({})",
                                   vm.life.last_result() ? vm.life.last_result()->message
                                                         : std::string("no result"));
    }
    return to_message(name, status);
}

void VmManager::accept_incoming(int fd, const std::string& peer) {
    try {
        check_available();
        if (incoming_.size() >= max_incoming) {
            throw Error(ErrorCode::conflict,
                        fmt::format("{} migrations are arriving already", incoming_.size()));
        }
        fs::path dir = incoming_dir(options_.run_dir);
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec) {
            throw Error(ErrorCode::io, fmt::format("creating {}: {}", dir.string(), ec.message()));
        }
        WorkerCommand command{.program = options_.worker,
                              .log = dir / fmt::format("{}.log", ++incoming_count_),
                              .device = options_.device,
                              .tls_dir = options_.tls_dir,
                              .incoming_fd = fd,
                              .run_root = options_.run_dir,
                              .control_socket = options_.control_socket};
        SpawnedWorker worker = spawn_worker(command);
        incoming_.emplace(worker.pid, Incoming{peer, command.log, worker.ready_fd});
        spdlog::info("incoming migration from {}: receiving worker pid {} (log {})", peer,
                     worker.pid, command.log.string());
    } catch (const Error& e) {
        spdlog::warn("incoming migration from {} refused: {}", peer, e.what());
    }
    ::close(fd);
}

bool VmManager::reap_incoming(pid_t pid) {
    auto it = incoming_.find(pid);
    if (it == incoming_.end()) {
        return false;
    }
    const Incoming& incoming = it->second;
    spdlog::warn("incoming migration from {} failed (worker pid {}): {}", incoming.peer, pid,
                 last_log_line(incoming.log));
    std::error_code ec;
    fs::rename(incoming.log, incoming_dir(options_.run_dir) / "last-failed.log", ec);
    ::close(incoming.ready_fd);
    incoming_.erase(it);
    return true;
}

control::VmInfo VmManager::adopt(const control::VmAdoptRequest& request) {
    auto it = incoming_.find(static_cast<pid_t>(request.worker_pid()));
    if (it == incoming_.end()) {
        throw Error(ErrorCode::conflict,
                    fmt::format("process {} is not a worker receiving a migration for this "
                                "godwitd",
                                request.worker_pid()));
    }
    vmm::VmDefinition def =
        vmm::parse_vm_definition(request.definition_json(), "in the migration stream");
    Vm& vm = register_vm(def, false);
    const vmm::VmRunFiles run = files(def.name);
    std::error_code ec;
    fs::create_directories(run.dir, ec);
    fs::remove(run.result(), ec);
    fs::remove(run.migration_status(), ec);
    std::ofstream(run.console(), std::ios::trunc);
    fs::rename(it->second.log, run.worker_log(), ec);
    pid_t pid = it->first;
    vm.incoming = true;
    vm.life.started(pid);
    std::ofstream(run.worker_pid()) << pid << '\n';
    vm.ready = std::make_unique<asio::posix::stream_descriptor>(io_, it->second.ready_fd);
    watch_ready(vm);
    spdlog::info("VM '{}' arriving from {} ({} vCPU, {} MiB): adopted worker pid {}", def.name,
                 it->second.peer, def.vcpus, def.memory_mib, pid);
    incoming_.erase(it);
    return info(vm);
}

void VmManager::forget(const std::string& name) {
    auto it = vms_.find(name);
    if (it == vms_.end()) {
        return;
    }
    Vm& vm = *it->second;
    const vmm::VmRunFiles run = files(name);
    std::error_code ec;
    if (vm.incoming) {
        spdlog::warn("VM '{}' did not arrive: nothing of it is kept here ({})", name,
                     vm.life.last_result() ? vm.life.last_result()->message : "no result");
        fs::create_directories(incoming_dir(options_.run_dir), ec);
        fs::rename(run.worker_log(), incoming_dir(options_.run_dir) / "last-failed.log", ec);
    } else {
        departed_[name] = to_message(name, vmm::read_migration_status(run.migration_status()));
        spdlog::info("VM '{}' {}: removed from this host", name,
                     vm.life.last_result() ? vm.life.last_result()->message : "left");
    }
    try {
        store().remove(name);
    } catch (const Error& e) {
        spdlog::warn("VM '{}': {}", name, e.what());
    }
    fs::remove_all(run.dir, ec);
    vms_.erase(it);
}

} // namespace godwit::daemon
