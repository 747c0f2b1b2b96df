// godwit-vm-worker: the process that runs one VM for godwitd (like Hyper-V's vmwp.exe: one
// worker per running VM, so a VMM failure takes down one VM, never the daemon).
//   godwit-vm-worker --definition web-1.json --console console.log --result result.json
//                    [--device /dev/godwit] [--ready-fd N]
// It builds the VM from its stored definition, runs it through /dev/godwit, writes COM1 to
// the console file and, when the VM stops, its result (vm_result.hpp) to the result file.
// SIGTERM/SIGINT/SIGHUP ask the VM to stop (VmRunner::request_stop). When the partition is
// built and the vCPUs are about to run it writes one byte to --ready-fd (godwitd's
// "starting" -> "running"). Exit status: 0 for a clean end (debug exit 0, power-off,
// stopped on request), 1 for any other guest end, a godwit::ErrorCode when it failed.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <thread>

#include <boost/program_options.hpp>

#include "godwit/error.hpp"
#include "godwit/vmm/godwit_backend.hpp"
#include "godwit/vmm/vm_definition.hpp"
#include "godwit/vmm/vm_platform.hpp"
#include "godwit/vmm/vm_result.hpp"
#include "godwit/vmm/vm_runner.hpp"

namespace po = boost::program_options;
using namespace godwit;

namespace {

// The signals that ask for a stop, plus SIGUSR1 with which the main thread ends the waiter.
sigset_t stop_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
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

int run_vm(const po::variables_map& vm, const std::filesystem::path& result_file) {
    vmm::VmDefinition def = vmm::load_vm_definition(vm["definition"].as<std::string>());
    vmm::VmPlatform::Options popts;
    popts.console_log = vm["console"].as<std::string>();
    vmm::VmPlatform platform(def, popts);
    vmm::GodwitBackend backend(platform.memory(), def.vcpus, vm["device"].as<std::string>());
    const auto& states = platform.initial_vcpu_states();
    for (unsigned i = 0; i < def.vcpus && i < states.size(); ++i) {
        backend.set_state(i, states[i]);
    }
    vmm::VmRunner runner(platform, backend, def.vcpus);

    // Stop requests arrive as signals; one thread takes them with sigwait (the others block
    // them, so no vCPU ioctl is interrupted) and turns them into request_stop.
    std::atomic<int> stop_signal{0};
    sigset_t set = stop_signals();
    std::thread waiter([&] {
        for (;;) {
            int sig = 0;
            if (sigwait(&set, &sig) != 0 || sig == SIGUSR1) {
                return;
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
    std::cerr << "godwit-vm-worker: VM '" << def.name << "' running in partition "
              << backend.partition() << " (" << def.vcpus << " vCPU, " << def.memory_mib << " MiB)"
              << std::endl;
    vmm::VmStop stop = runner.run();
    ::pthread_kill(waiter.native_handle(), SIGUSR1);
    waiter.join();

    vmm::VmResult result = vmm::VmResult::from_stop(stop);
    if (result.kind == vmm::VmResult::Kind::stopped && stop_signal.load() != 0) {
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
    options.add_options()("help,h",
                          "this help")("definition", po::value<std::string>()->required(),
                                       "the VM's definition file (docs/vm-definition.md)")(
        "console", po::value<std::string>()->default_value(""),
        "append COM1 output to this file")("result", po::value<std::string>()->default_value(""),
                                           "write how the VM ended to this file (JSON)")(
        "device", po::value<std::string>()->default_value("/dev/godwit"),
        "the root driver's device")("ready-fd", po::value<int>()->default_value(-1),
                                    "write one byte to this descriptor once the VM runs")(
        "save-request", po::value<std::string>()->default_value(""),
        "accepted for godwitd; saving arrives with the hypervisor's dirty log ABI");
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
