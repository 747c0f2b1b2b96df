// godwit-vm-worker: the process that runs one VM for godwitd (like Hyper-V's vmwp.exe: one
// worker per running VM, so a VMM failure takes down one VM, never the daemon).
//   godwit-vm-worker --definition web-1.json --console console.log --result result.json
//                    [--device /dev/godwit] [--ready-fd N] [--save-request FILE]
//   godwit-vm-worker --restore-from SAVED [--name NEW] --console ... --result ...
// It builds the VM from its stored definition (or restores it from a saved state, the
// migration stream of docs/migration-stream.md), runs it through /dev/godwit, writes COM1 to
// the console file and, when the VM stops, its result (vm_result.hpp) to the result file.
// SIGTERM/SIGINT/SIGHUP ask the VM to stop (VmRunner::request_stop). SIGUSR2 asks for a
// save: the worker reads the target path from --save-request FILE, pauses the VM, writes its
// state there and stops it ("saved to ..."); the outcome goes to FILE.result as JSON
// {"ok": bool, "error": "...", "report": {...}} and a failed save leaves the VM running.
// When the partition is built and the vCPUs are about to run it writes one byte to
// --ready-fd (godwitd's "starting" -> "running"). Exit status: 0 for a clean end (debug
// exit 0, power-off, stopped on request, saved), 1 for any other guest end, a
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
#include <nlohmann/json.hpp>

#include "godwit/error.hpp"
#include "godwit/migration/channel.hpp"
#include "godwit/migration/migration.hpp"
#include "godwit/vmm/godwit_backend.hpp"
#include "godwit/vmm/vm_definition.hpp"
#include "godwit/vmm/vm_migration.hpp"
#include "godwit/vmm/vm_platform.hpp"
#include "godwit/vmm/vm_result.hpp"
#include "godwit/vmm/vm_runner.hpp"

namespace po = boost::program_options;
using namespace godwit;

namespace {

// The signals that ask for a stop, SIGUSR2 (save), plus SIGUSR1 with which the main thread ends the
// waiter.
sigset_t stop_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) {
        sigaddset(&set, s);
    }
    return set;
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

int run_vm(const po::variables_map& vm, const std::filesystem::path& result_file) {
    const std::string device = vm["device"].as<std::string>();
    vmm::VmPlatform::Options popts;
    popts.console_log = vm["console"].as<std::string>();
    std::optional<vmm::GodwitBackend> backend;
    std::unique_ptr<vmm::VmPlatform> built;
    std::unique_ptr<vmm::VmReceiver> receiver;
    vmm::VmPlatform* platform = nullptr;
    vmm::VmDefinition def;
    if (vm.count("restore-from")) {
        const std::string saved = vm["restore-from"].as<std::string>();
        receiver = std::make_unique<vmm::VmReceiver>(vmm::VmReceiver::Options{
            .rename = vm["name"].as<std::string>(),
            .platform = popts,
            .make_partition = [&](vmm::VmPlatform& p,
                                  const vmm::VmDefinition& d) -> vmm::PartitionAccess& {
                backend.emplace(p.memory(), d.vcpus, device);
                return *backend;
            },
            .check = {}});
        auto channel = migration::file_channel(saved, false);
        migration::IncomingResult in = migration::migrate_in(*channel, *receiver);
        if (!in.ok) {
            throw Error(ErrorCode::invalid_input, "restoring from " + saved + ": " + in.error);
        }
        def = receiver->definition();
        platform = &receiver->platform();
    } else {
        if (!vm.count("definition")) {
            throw Error(ErrorCode::usage, "--definition or --restore-from is required");
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

    // Stop and save requests arrive as signals; one thread takes them with sigwait (the
    // others block them, so no vCPU ioctl is interrupted).
    std::atomic<int> stop_signal{0};
    std::string saved_to;
    const std::filesystem::path save_request = vm["save-request"].as<std::string>();
    sigset_t set = stop_signals();
    std::thread waiter([&] {
        for (;;) {
            int sig = 0;
            if (sigwait(&set, &sig) != 0 || sig == SIGUSR1) {
                return;
            }
            if (sig == SIGUSR2) {
                if (save_request.empty()) {
                    std::cerr << "godwit-vm-worker: SIGUSR2 without --save-request: ignored"
                              << std::endl;
                } else if (save_vm(save_request, runner, def, *platform, *backend)) {
                    std::ifstream(save_request) >> saved_to;
                    runner.request_stop(); // the VM lives on in the file
                }
                continue;
            }
            stop_signal.store(sig);
            runner.request_stop();
        }
    });
    int ready_fd = vm["ready-fd"].as<int>();
    if (ready_fd >= 0) {
        char byte = 1;
        (void)!::write(ready_fd, &byte, 1);
        ::close(ready_fd);
    }
    std::cerr << "godwit-vm-worker: VM '" << def.name << "' " << (receiver ? "restored" : "running")
              << " in partition " << backend->partition() << " (" << def.vcpus << " vCPU, "
              << def.memory_mib << " MiB)" << std::endl;
    vmm::VmStop stop = runner.run();
    ::pthread_kill(waiter.native_handle(), SIGUSR1);
    waiter.join();

    vmm::VmResult result = vmm::VmResult::from_stop(stop);
    if (result.kind == vmm::VmResult::Kind::stopped && !saved_to.empty()) {
        result.message = "saved to " + saved_to;
    } else if (result.kind == vmm::VmResult::Kind::stopped && stop_signal.load() != 0) {
        result.message = std::string("stopped on request (SIG") +
                         ::sigabbrev_np(stop_signal.load()) + " to the worker)";
    }
    report(result_file, result);
    if (result.kind == vmm::VmResult::Kind::failed) {
        return exit_code_for(ErrorCode::failed);
    }
    return result.clean() ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    // Before any thread exists, so every thread inherits the blocked set.
    sigset_t set = stop_signals();
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);

    po::options_description options("godwit-vm-worker options");
    options.add_options()("help,h", "this help")(
        "definition", po::value<std::string>(), "the VM's definition file (docs/vm-definition.md)")(
        "restore-from", po::value<std::string>(),
        "restore the VM from this saved state instead (godwit vm save)")(
        "name", po::value<std::string>()->default_value(""), "with --restore-from: a new name")(
        "console", po::value<std::string>()->default_value(""),
        "append COM1 output to this file")("result", po::value<std::string>()->default_value(""),
                                           "write how the VM ended to this file (JSON)")(
        "device", po::value<std::string>()->default_value("/dev/godwit"),
        "the root driver's device")("ready-fd", po::value<int>()->default_value(-1),
                                    "write one byte to this descriptor once the VM runs")(
        "save-request", po::value<std::string>()->default_value(""),
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
    std::filesystem::path result_file = vm["result"].as<std::string>();
    vmm::VmResult failure;
    try {
        return run_vm(vm, result_file);
    } catch (const Error& e) {
        failure.error_code = static_cast<int>(e.code());
        failure.message = e.what();
    } catch (const std::exception& e) {
        failure.error_code = static_cast<int>(ErrorCode::internal);
        failure.message = std::string("internal error: ") + e.what();
    }
    report(result_file, failure);
    return failure.error_code;
}
