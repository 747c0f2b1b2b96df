// godwit-vm-worker: the process that runs one VM for godwitd (like Hyper-V's vmwp.exe: one
// worker per running VM, so a VMM failure takes down one VM, never the daemon).
//   godwit-vm-worker --definition web-1.json --run-dir RUN_DIR/web-1 [--device /dev/godwit]
//                    [--ready-fd N] [--tls-dir DIR]
//   godwit-vm-worker --restore-from SAVED [--name NEW] --run-dir ...
//   godwit-vm-worker --incoming-fd N --run-root RUN_DIR --control-socket SOCK [--tls-dir DIR]
// It builds the VM from its stored definition (or restores it from a saved state, or
// receives it from another host over the connection godwitd accepted: the migration stream
// of docs/migration-stream.md), runs it through /dev/godwit, writes COM1 to the console
// file and, when the VM stops, its result (vm_result.hpp) to the result file. The files it
// uses are those of vm_run_files.hpp in --run-dir (or --console/--result/--save-request
// one by one). A VM received by migration is handed to godwitd (VmAdoptRequest) once its
// definition has arrived; its run directory is then RUN_ROOT/NAME.
// Signals (all taken by one thread with sigwait, so no vCPU ioctl is interrupted):
//   SIGTERM/SIGINT/SIGHUP  stop the VM (VmRunner::request_stop)
//   SIGUSR2                save: pause, write the state to the path in save-request, stop
//                          ("saved to ..."); the outcome goes to save-request.result
//                          {"ok": bool, "error": "...", "report": {...}}, and a failed save
//                          leaves the VM running
//   SIGRTMIN               migrate as migrate-request says (docs/live-migration.md); the
//                          progress and outcome go to migration.json; on success the VM
//                          stops here ("migrated to HOST:PORT")
//   SIGRTMIN+1             cancel the migration under way
// When the partition is built and the vCPUs are about to run it writes one byte to
// --ready-fd (godwitd's "starting" -> "running"). Exit status: 0 for a clean end (debug
// exit 0, power-off, stopped on request, saved, migrated), 1 for any other guest end, a
// godwit::ErrorCode when it failed.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "control.pb.h"
#include "godwit/control_client.hpp"
#include "godwit/error.hpp"
#include "godwit/migration/channel.hpp"
#include "godwit/migration/migration.hpp"
#include "godwit/vmm/godwit_backend.hpp"
#include "godwit/vmm/migration_control.hpp"
#include "godwit/vmm/outgoing_migration.hpp"
#include "godwit/vmm/vm_definition.hpp"
#include "godwit/vmm/vm_migration.hpp"
#include "godwit/vmm/vm_platform.hpp"
#include "godwit/vmm/vm_result.hpp"
#include "godwit/vmm/vm_run_files.hpp"
#include "godwit/vmm/vm_runner.hpp"

namespace po = boost::program_options;
using namespace godwit;

namespace {

int migrate_signal() {
    return SIGRTMIN;
}
int cancel_signal() {
    return SIGRTMIN + 1;
}

// The signals that ask for a stop, save, migrate or cancel, plus SIGUSR1 with which the main
// thread ends the waiter.
sigset_t control_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, migrate_signal(), cancel_signal()}) {
        sigaddset(&set, s);
    }
    return set;
}

// Where this worker's files are: --run-dir, or the single-file options (which win).
struct WorkerFiles {
    std::filesystem::path console, result, save_request, migrate_request, migration_status;
    void use_run_dir(const vmm::VmRunFiles& run) {
        console = run.console();
        result = run.result();
        save_request = run.save_request();
        migrate_request = run.migrate_request();
        migration_status = run.migration_status();
    }
};

// The destination's side of a migration: godwitd takes the VM over once its definition
// (and every state record) has arrived, or refuses it (name in use...); the refusal reaches
// the source as the reason the migration failed.
vmm::VmRunFiles adopt(const std::string& control_socket, const std::filesystem::path& run_root,
                      const vmm::VmDefinition& definition, const std::string& source) {
    control::Request request;
    auto* adopt = request.mutable_vm_adopt();
    adopt->set_definition_json(vmm::vm_definition_to_json(definition));
    adopt->set_worker_pid(static_cast<std::uint32_t>(::getpid()));
    adopt->set_source(source);
    control::Response response = control::call(control_socket, request);
    if (!response.has_vm()) {
        throw Error(ErrorCode::protocol, "godwitd answered the adoption with something else");
    }
    return vmm::VmRunFiles{run_root / definition.name};
}

void report(const std::filesystem::path& result_file, const vmm::VmResult& result) {
    std::cerr << "godwit-vm-worker: " << to_string(result.kind) << ": " << result.message
              << std::endl;
    if (result_file.empty()) {
        return;
    }
    try {
        vmm::write_vm_result(result_file, result);
    } catch (const Error& e) {
        std::cerr << "godwit-vm-worker: cannot record the result: " << e.what() << std::endl;
    }
}

// Saves the paused VM to the file named in `request` (quick migration: one pass, no
// dirty tracking needed but harmless) and records the outcome beside the request.
bool save_vm(const std::filesystem::path& request, vmm::VmRunner& runner,
             const vmm::VmDefinition& def, vmm::VmPlatform& platform,
             vmm::PartitionAccess& partition) {
    nlohmann::ordered_json outcome{{"ok", false}};
    std::string target;
    try {
        std::ifstream in(request);
        if (!std::getline(in, target) || target.empty()) {
            throw Error(ErrorCode::invalid_input, request.string() + ": no target file named");
        }
        if (std::filesystem::exists(target)) {
            throw Error(ErrorCode::conflict, target + " exists; not overwriting a saved state");
        }
        auto channel = migration::file_channel(target, true);
        vmm::MigrationMemory memory(platform.memory());
        vmm::PartitionDirtyLog dirty(partition);
        vmm::RunnerControl control(runner);
        vmm::VmStateSaver saver(def, platform, partition);
        migration::SourceOptions options;
        options.vm_name = def.name;
        options.live = false;
        migration::Report report =
            migration::migrate_out(*channel, memory, dirty, control, saver, options);
        outcome["report"] = report.to_json();
        if (!report.ok) {
            std::error_code ec;
            std::filesystem::remove(target, ec); // a partial state is no saved state
            throw Error(ErrorCode::failed, "saving to " + target + ": " + report.error);
        }
        outcome["ok"] = true;
    } catch (const Error& e) {
        outcome["error"] = e.what();
    }
    std::cerr << "godwit-vm-worker: save: " << outcome.dump() << std::endl;
    std::ofstream(request.string() + ".result") << outcome.dump() << "\n";
    return outcome["ok"].get<bool>();
}

int run_vm(const po::variables_map& vm, WorkerFiles& files) {
    const std::string device = vm["device"].as<std::string>();
    const std::filesystem::path tls_dir = vm["tls-dir"].as<std::string>();
    vmm::VmPlatform::Options popts;
    popts.console_log = files.console;
    std::optional<vmm::GodwitBackend> backend;
    std::unique_ptr<vmm::VmPlatform> built;
    std::unique_ptr<vmm::VmReceiver> receiver;
    vmm::VmPlatform* platform = nullptr;
    vmm::VmDefinition def;
    const bool incoming = vm.count("incoming-fd") != 0;
    if (vm.count("restore-from") || incoming) {
        std::unique_ptr<migration::Channel> channel;
        std::string source;
        if (incoming) {
            if (!vm.count("run-root") || !vm.count("control-socket")) {
                throw Error(ErrorCode::usage,
                            "--incoming-fd needs --run-root and --control-socket");
            }
            // The source must present a certificate of our CA, as we present ours to it.
            channel = migration::adopt_server_channel(
                vm["incoming-fd"].as<int>(), vmm::tls_from_dir(tls_dir), std::chrono::seconds(60));
            source = channel->peer();
            std::cerr << "godwit-vm-worker: receiving a VM from " << source << std::endl;
        } else {
            channel = migration::file_channel(vm["restore-from"].as<std::string>(), false);
            source = vm["restore-from"].as<std::string>();
        }
        vmm::VmReceiver::Options options{
            .rename = vm["name"].as<std::string>(),
            .platform = popts,
            .make_partition = [&](vmm::VmPlatform& p,
                                  const vmm::VmDefinition& d) -> vmm::PartitionAccess& {
                backend.emplace(p.memory(), d.vcpus, device);
                return *backend;
            },
            .check = {}};
        if (incoming) {
            options.check = [&](const vmm::VmDefinition& d, vmm::VmPlatform::Options& p) {
                vmm::VmRunFiles run = adopt(vm["control-socket"].as<std::string>(),
                                            vm["run-root"].as<std::string>(), d, source);
                files.use_run_dir(run);
                p.console_log = files.console;
                std::cerr << "godwit-vm-worker: godwitd adopted VM '" << d.name << "' from "
                          << source << std::endl;
            };
        }
        receiver = std::make_unique<vmm::VmReceiver>(std::move(options));
        migration::IncomingResult in = migration::migrate_in(*channel, *receiver);
        if (!in.ok) {
            throw Error(incoming ? ErrorCode::failed : ErrorCode::invalid_input,
                        (incoming ? "receiving a VM from " : "restoring from ") + source + ": " +
                            in.error);
        }
        def = receiver->definition();
        platform = &receiver->platform();
        const auto& t = receiver->restore_timings();
        std::cerr << fmt::format("godwit-vm-worker: VM '{}' rebuilt in {:.0f} ms ({}{:.0f} ms, "
                                 "devices {:.0f} ms, memory {:.0f} ms, partition {:.0f} ms)",
                                 def.name, in.restore_ms,
                                 incoming ? "adoption by godwitd " : "checks ", t.check_ms,
                                 t.devices_ms, t.memory_ms, t.partition_ms)
                  << std::endl;
    } else {
        if (!vm.count("definition")) {
            throw Error(ErrorCode::usage,
                        "--definition, --restore-from or --incoming-fd is required");
        }
        def = vmm::load_vm_definition(vm["definition"].as<std::string>());
        built = std::make_unique<vmm::VmPlatform>(def, popts);
        platform = built.get();
        backend.emplace(platform->memory(), def.vcpus, device);
        const auto& states = platform->initial_vcpu_states();
        for (unsigned i = 0; i < def.vcpus && i < states.size(); ++i) {
            backend->set_state(i, states[i]);
        }
    }
    vmm::VmRunner runner(*platform, *backend, def.vcpus);
    vmm::OutgoingMigration outgoing(runner, def, *platform, *backend, files.migration_status);

    // Stop, save and migration requests arrive as signals; one thread takes them with
    // sigwait (the others block them, so no vCPU ioctl is interrupted).
    std::atomic<int> stop_signal{0};
    std::string saved_to;
    sigset_t set = control_signals();
    std::thread waiter([&] {
        for (;;) {
            int sig = 0;
            if (sigwait(&set, &sig) != 0 || sig == SIGUSR1) {
                return;
            }
            if (sig == SIGUSR2) {
                if (files.save_request.empty()) {
                    std::cerr << "godwit-vm-worker: SIGUSR2 without --save-request: ignored"
                              << std::endl;
                } else if (save_vm(files.save_request, runner, def, *platform, *backend)) {
                    std::ifstream(files.save_request) >> saved_to;
                    runner.request_stop(); // the VM lives on in the file
                }
                continue;
            }
            if (sig == migrate_signal()) {
                try {
                    std::ifstream in(files.migrate_request);
                    auto doc = nlohmann::json::parse(in, nullptr, false);
                    if (!outgoing.start(vmm::migrate_request_from_json(doc))) {
                        std::cerr << "godwit-vm-worker: a migration is under way: request ignored"
                                  << std::endl;
                    }
                } catch (const Error& e) {
                    vmm::MigrationStatus failed;
                    failed.state = "failed";
                    failed.error = e.what();
                    vmm::write_migration_status(files.migration_status, failed);
                }
                continue;
            }
            if (sig == cancel_signal()) {
                std::cerr << "godwit-vm-worker: migration cancel requested" << std::endl;
                outgoing.cancel();
                continue;
            }
            stop_signal.store(sig);
            outgoing.cancel(); // a stop wins over a migration under way
            runner.request_stop();
        }
    });
    int ready_fd = vm["ready-fd"].as<int>();
    if (ready_fd >= 0) {
        char byte = 1;
        (void)!::write(ready_fd, &byte, 1);
        ::close(ready_fd);
    }
    std::cerr << "godwit-vm-worker: VM '" << def.name << "' "
              << (incoming   ? "received"
                  : receiver ? "restored"
                             : "running")
              << " in partition " << backend->partition() << " (" << def.vcpus << " vCPU, "
              << def.memory_mib << " MiB)" << std::endl;
    // Where guest-physical 0 is in this process: for inspecting a VM from outside through
    // /proc/PID/mem (the end-to-end tests check guest memory across a migration that way).
    std::cerr << "godwit-vm-worker: guest RAM at host address 0x" << std::hex
              << reinterpret_cast<std::uintptr_t>(platform->memory().host_span(0, 1).data())
              << std::dec << " in pid " << ::getpid() << std::endl;
    vmm::VmStop stop = runner.run();
    ::pthread_kill(waiter.native_handle(), SIGUSR1);
    waiter.join();
    outgoing.cancel(); // the VM ended by itself meanwhile: nothing left to migrate
    outgoing.join();

    vmm::VmResult result = vmm::VmResult::from_stop(stop);
    const std::string migrated_to = outgoing.migrated_to();
    if (result.kind == vmm::VmResult::Kind::stopped && !migrated_to.empty()) {
        result.message = "migrated to " + migrated_to;
    } else if (result.kind == vmm::VmResult::Kind::stopped && !saved_to.empty()) {
        result.message = "saved to " + saved_to;
    } else if (result.kind == vmm::VmResult::Kind::stopped && stop_signal.load() != 0) {
        result.message = std::string("stopped on request (SIG") +
                         ::sigabbrev_np(stop_signal.load()) + " to the worker)";
    }
    report(files.result, result);
    if (result.kind == vmm::VmResult::Kind::failed) {
        return exit_code_for(ErrorCode::failed);
    }
    return result.clean() ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    // Before any thread exists, so every thread inherits the blocked set.
    sigset_t blocked = control_signals();
    ::pthread_sigmask(SIG_BLOCK, &blocked, nullptr);

    po::options_description options("godwit-vm-worker options");
    options.add_options()("help,h", "this help")(
        "definition", po::value<std::string>(), "the VM's definition file (docs/vm-definition.md)")(
        "restore-from", po::value<std::string>(),
        "restore the VM from this saved state instead (godwit vm save)")(
        "incoming-fd", po::value<int>(),
        "receive the VM by migration on this connected socket (TLS server side)")(
        "name", po::value<std::string>()->default_value(""), "with --restore-from: a new name")(
        "run-dir", po::value<std::string>(),
        "the VM's run directory: console.log, result.json, save-request, migrate-request, "
        "migration.json")(
        "run-root", po::value<std::string>(),
        "with --incoming-fd: godwitd's run directory (the VM's is RUN_ROOT/NAME)")(
        "control-socket", po::value<std::string>(),
        "with --incoming-fd: godwitd's control socket, to hand the VM over")(
        "tls-dir", po::value<std::string>()->default_value("/etc/godwit/tls"),
        "this host's migration credentials (ca.pem, host.pem, host.key)")(
        "console", po::value<std::string>(), "append COM1 output to this file")(
        "result", po::value<std::string>(), "write how the VM ended to this file (JSON)")(
        "device", po::value<std::string>()->default_value("/dev/godwit"),
        "the root driver's device")("ready-fd", po::value<int>()->default_value(-1),
                                    "write one byte to this descriptor once the VM runs")(
        "save-request", po::value<std::string>(),
        "on SIGUSR2, save the VM to the path this file names and stop");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, options), vm);
        if (vm.count("help")) {
            std::cout << "Runs one VM for godwitd (docs/vm-management.md).\n" << options;
            return 0;
        }
        po::notify(vm);
    } catch (const po::error& e) {
        std::cerr << "godwit-vm-worker: " << e.what() << " (see --help)" << std::endl;
        return exit_code_for(ErrorCode::usage);
    }
    WorkerFiles files;
    if (vm.count("run-dir")) {
        files.use_run_dir(vmm::VmRunFiles{vm["run-dir"].as<std::string>()});
    }
    if (vm.count("console")) {
        files.console = vm["console"].as<std::string>();
    }
    if (vm.count("result")) {
        files.result = vm["result"].as<std::string>();
    }
    if (vm.count("save-request")) {
        files.save_request = vm["save-request"].as<std::string>();
    }
    vmm::VmResult failure;
    try {
        return run_vm(vm, files);
    } catch (const Error& e) {
        failure.error_code = static_cast<int>(e.code());
        failure.message = e.what();
    } catch (const std::exception& e) {
        failure.error_code = static_cast<int>(ErrorCode::internal);
        failure.message = std::string("internal error: ") + e.what();
    }
    report(files.result, failure);
    return failure.error_code;
}
