// godwitd's VMs (docs/vm-management.md): definitions stored as files in the state directory
// and loaded at startup, one godwit-vm-worker process per running VM (like Hyper-V's VMMS
// with one vmwp.exe per VM), its console log, result and output in the run directory:
//   STATE_DIR/NAME.json            the definition (VmDefinitionStore)
//   RUN_DIR/NAME/console.log       COM1 of the current or last run
//   RUN_DIR/NAME/result.json       how the last run ended (vm_result.hpp)
//   RUN_DIR/NAME/worker.log        the worker's own messages
//   RUN_DIR/NAME/save-request      `vm save`: the target path (SIGUSR2 to the worker),
//                                  save-request.result its outcome (JSON)
// Workers are reaped on SIGCHLD; stop is SIGTERM then, after a timeout, SIGKILL.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio.hpp>

#include "control.pb.h"
#include "godwit/vmm/vm_definition.hpp"
#include "godwit/vmm/vm_definition_store.hpp"
#include "godwit/vmm/vm_run_files.hpp"
#include "vm_state.hpp"

namespace godwit::daemon {

struct VmManagerOptions {
    std::filesystem::path state_dir = "/var/lib/godwit/vms";
    std::filesystem::path run_dir = "/run/godwit/vms";
    std::filesystem::path worker; // empty: default_worker_program()
    std::string device = "/dev/godwit";
    std::uint64_t reserve_mib = 64; // memory kept for the root partition itself
    std::chrono::seconds stop_timeout{30};
    // Live migration (docs/live-migration.md): this host's credentials, and the control
    // socket a worker receiving a VM uses to hand it over.
    std::filesystem::path tls_dir = "/etc/godwit/tls";
    std::filesystem::path control_socket;
};

class VmManager {
  public:
    // Loads the stored definitions. An unreadable state directory does not stop godwitd
    // (host commands still work); every VM request then fails with the reason. Directories
    // are created when the first VM is created or started.
    VmManager(boost::asio::io_context& io, VmManagerOptions options);
    ~VmManager();
    VmManager(const VmManager&) = delete;
    VmManager& operator=(const VmManager&) = delete;

    // The answer to a VM request; nullopt when `request` is not one. Throws godwit::Error.
    std::optional<control::Response> handle(const control::Request& request);

    // Daemon exit: SIGTERM to every worker, up to `grace` for them to end, SIGKILL the rest.
    void shutdown(std::chrono::seconds grace);

    // A connection the migration listener accepted from `peer`: a new worker receives the VM
    // on it (TLS, the VM's definition, then godwitd adopts it). Takes ownership of `fd`.
    void accept_incoming(int fd, const std::string& peer);

  private:
    struct Vm {
        explicit Vm(vmm::VmDefinition d) : definition(std::move(d)), life(definition.name) {}
        vmm::VmDefinition definition;
        VmLifecycle life;
        std::unique_ptr<boost::asio::posix::stream_descriptor> ready; // "running" pipe
        std::unique_ptr<boost::asio::steady_timer> stop_timer; // SIGTERM -> SIGKILL escalation
        std::chrono::seconds stop_timeout{0};
        std::array<char, 1> ready_byte{};
        bool incoming = false; // arriving by migration, not yet running here
    };
    // A worker receiving a VM that godwitd has not adopted yet (it knows no name).
    struct Incoming {
        std::string peer;
        std::filesystem::path log;
        int ready_fd = -1;
    };

    control::VmInfo create(const std::string& definition_json);
    // restore_from: run the VM from this saved state instead of booting its kernel.
    control::VmInfo start(const std::string& name, const std::string& restore_from = {});
    control::VmInfo restore(const std::string& path, const std::string& name);
    control::VmInfo stop(const std::string& name, std::chrono::seconds timeout);
    control::VmInfo kill(const std::string& name);
    control::VmInfo save(const std::string& name, const std::string& path);
    control::VmInfo remove(const std::string& name);
    control::VmConsole console(const std::string& name, std::uint64_t from, std::uint32_t max);
    // Migration (vm_manager_migration.cpp).
    control::VmMigration migrate(const control::VmMigrateRequest& request);
    control::VmMigration migrate_cancel(const std::string& name);
    control::VmMigration migration_status(const std::string& name);
    control::VmInfo adopt(const control::VmAdoptRequest& request);
    // reap() for a worker still receiving (no VM yet); false when `pid` is none of them.
    bool reap_incoming(pid_t pid);
    // reap() for a VM that left (migrated away) or never arrived (incoming that failed).
    void forget(const std::string& name);
    void refuse_name_in_use(const std::string& name) const; // ErrorCode::conflict
    // Registers `def` (stored definition and record); validate_kernel for VMs that boot here.
    Vm& register_vm(const vmm::VmDefinition& def, bool validate_kernel);

    Vm& find(const std::string& name);
    void check_available() const;    // Error(io) when the state directory is unusable
    vmm::VmDefinitionStore& store(); // created with the first VM
    std::uint64_t available_memory_mib() const;
    vmm::VmRunFiles files(const std::string& name) const; // RUN_DIR/NAME
    control::VmInfo info(const Vm& vm) const;
    void watch_children();
    void reap(pid_t pid, int status);
    void watch_ready(Vm& vm);

    boost::asio::io_context& io_;
    VmManagerOptions options_;
    std::optional<vmm::VmDefinitionStore> store_;
    std::string store_error_;
    boost::asio::signal_set child_signals_;
    std::map<std::string, std::unique_ptr<Vm>> vms_;
    std::map<pid_t, Incoming> incoming_;
    std::uint64_t incoming_count_ = 0;
    // The last migration status of VMs that moved to another host (for `vm migrate` waiting
    // on the outcome after the VM is gone here).
    std::map<std::string, control::VmMigration> departed_;
};

} // namespace godwit::daemon
