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
#include "vm_state.hpp"

namespace godwit::daemon {

struct VmManagerOptions {
    std::filesystem::path state_dir = "/var/lib/godwit/vms";
    std::filesystem::path run_dir = "/run/godwit/vms";
    std::filesystem::path worker; // empty: default_worker_program()
    std::string device = "/dev/godwit";
    std::uint64_t reserve_mib = 64; // memory kept for the root partition itself
    std::chrono::seconds stop_timeout{30};
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

  private:
    struct Vm;

    control::VmInfo create(const std::string& definition_json);
    // restore_from: run the VM from this saved state instead of booting its kernel.
    control::VmInfo start(const std::string& name, const std::string& restore_from = {});
    control::VmInfo restore(const std::string& path, const std::string& name);
    control::VmInfo stop(const std::string& name, std::chrono::seconds timeout);
    control::VmInfo kill(const std::string& name);
    control::VmInfo save(const std::string& name, const std::string& path);
    control::VmInfo remove(const std::string& name);
    control::VmConsole console(const std::string& name, std::uint64_t from, std::uint32_t max);

    Vm& find(const std::string& name);
    void check_available() const;    // Error(io) when the state directory is unusable
    vmm::VmDefinitionStore& store(); // created with the first VM
    std::uint64_t available_memory_mib() const;
    std::filesystem::path run_path(const std::string& name) const;
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
};

} // namespace godwit::daemon
