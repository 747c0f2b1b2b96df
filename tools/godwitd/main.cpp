// godwitd — the Godwit root-partition daemon. Owns the host's control plane: answers the
// godwit CLI on a local socket, talks to the hypervisor through /dev/godwit and owns the
// host's VMs (one godwit-vm-worker process per running VM, docs/vm-management.md) and, with
// --migration-listen, accepts VMs migrating in from other hosts (docs/live-migration.md).
#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <iostream>
#include <optional>

#include <boost/asio.hpp>
#include <boost/program_options.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include "control_server.hpp"
#include "godwit/control_client.hpp"
#include "godwit/error.hpp"
#include "godwit/logging.hpp"
#include "godwit/version.hpp"
#include "host_info.hpp"
#include "hypervisor_device.hpp"
#include "migration_listener.hpp"
#include "vm_manager.hpp"

namespace po = boost::program_options;
using namespace godwit;

namespace {

// Classic double-fork-free daemonization: fork, parent exits once the child is set up
// (so `godwitd --daemon && next` sees a listening socket), child calls setsid.
int daemonize_parent_waits(int ready_pipe[2]) {
    pid_t pid = ::fork();
    if (pid < 0) {
        throw system_error("fork", errno);
    }
    if (pid > 0) {
        ::close(ready_pipe[1]);
        char status = 1;
        if (::read(ready_pipe[0], &status, 1) != 1) {
            status = 1;
        }
        ::_exit(status == 0 ? 0 : 1);
    }
    ::close(ready_pipe[0]);
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
        ::dup2(null, 0);
        ::dup2(null, 1);
        if (null > 2) {
            ::close(null);
        }
    }
    return ready_pipe[1];
}

} // namespace

int main(int argc, char** argv) {
    po::options_description options("godwitd options");
    options.add_options()("help,h", "show this help")("version", "print the version")(
        "socket", po::value<std::string>()->default_value(control::socket_path_from_environment()),
        "control socket path (also $GODWIT_SOCKET)")(
        "device", po::value<std::string>()->default_value("/dev/godwit"),
        "the root driver's device")("daemon", "detach and run in the background")(
        "log-file", po::value<std::string>(), "log to this file instead of stderr")(
        "log-level", po::value<std::string>()->default_value("info"),
        "trace|debug|info|warn|error|critical|off")(
        "state-dir", po::value<std::string>()->default_value("/var/lib/godwit/vms"),
        "where VM definitions are stored (one NAME.json per VM)")(
        "run-dir", po::value<std::string>()->default_value("/run/godwit/vms"),
        "per-VM console log, result and worker log (RUN_DIR/NAME/)")(
        "worker", po::value<std::string>()->default_value(""),
        "the VM worker program (default: godwit-vm-worker beside godwitd, else on $PATH)")(
        "reserve-mib", po::value<std::uint64_t>()->default_value(64),
        "memory (MiB) kept for the root partition: VMs get MemAvailable less this")(
        "stop-timeout", po::value<unsigned>()->default_value(30),
        "seconds `godwit vm stop` waits after SIGTERM before it kills a worker")(
        "migration-listen", po::value<std::string>(),
        "accept VMs migrating here on ADDR[:PORT] (default port 6600); without it this host "
        "only sends VMs away")("tls-dir",
                               po::value<std::string>()->default_value("/etc/godwit/tls"),
                               "this host's migration credentials: ca.pem (the cluster's CA), "
                               "host.pem and host.key (docs/live-migration.md)");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, options), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        std::cerr << "godwitd: " << e.what() << " (see godwitd --help)\n";
        return exit_code_for(ErrorCode::usage);
    }
    if (vm.count("help")) {
        std::cout << "Usage: godwitd [OPTIONS]\nThe Godwit root-partition daemon: serves the "
                     "godwit CLI on a local socket.\n\n"
                  << options;
        return 0;
    }
    if (vm.count("version")) {
        std::cout << "godwitd " << version() << '\n';
        return 0;
    }
    auto level = parse_log_level(vm["log-level"].as<std::string>());
    if (!level) {
        std::cerr << "godwitd: unknown log level\n";
        return exit_code_for(ErrorCode::usage);
    }
    if (vm.count("daemon") && !vm.count("log-file")) {
        std::cerr << "godwitd: --daemon needs --log-file (stderr is detached)\n";
        return exit_code_for(ErrorCode::usage);
    }
    int ready_fd = -1;
    try {
        if (vm.count("daemon")) {
            int ready_pipe[2];
            if (::pipe(ready_pipe) != 0) {
                throw system_error("pipe", errno);
            }
            ready_fd = daemonize_parent_waits(ready_pipe);
        }
        if (vm.count("log-file")) {
            auto logger = spdlog::basic_logger_mt("godwitd", vm["log-file"].as<std::string>());
            logger->set_level(*level);
            logger->flush_on(spdlog::level::info);
            spdlog::set_default_logger(logger);
        } else {
            init_logging(*level);
        }
        std::string device = vm["device"].as<std::string>();
        boost::asio::io_context io;
        daemon::VmManagerOptions vm_options;
        vm_options.state_dir = vm["state-dir"].as<std::string>();
        vm_options.run_dir = vm["run-dir"].as<std::string>();
        vm_options.worker = vm["worker"].as<std::string>();
        vm_options.device = device;
        vm_options.reserve_mib = vm["reserve-mib"].as<std::uint64_t>();
        vm_options.stop_timeout = std::chrono::seconds(vm["stop-timeout"].as<unsigned>());
        vm_options.tls_dir = vm["tls-dir"].as<std::string>();
        vm_options.control_socket =
            std::filesystem::absolute(vm["socket"].as<std::string>()).string();
        daemon::VmManager vms(io, vm_options);
        std::optional<daemon::MigrationListener> migration_listener;
        if (vm.count("migration-listen")) {
            migration_listener.emplace(
                io, vm["migration-listen"].as<std::string>(),
                [&vms](int fd, const std::string& peer) { vms.accept_incoming(fd, peer); });
            spdlog::info("accepting migrations on {} (credentials in {})",
                         migration_listener->local_endpoint(), vm_options.tls_dir.string());
        }
        daemon::ControlServer server(
            io, vm["socket"].as<std::string>(), [device, &vms](const control::Request& request) {
                if (auto answer = vms.handle(request)) {
                    return *answer;
                }
                control::Response response;
                if (request.has_host_log()) {
                    daemon::HypervisorDevice hv(device);
                    control::HostLog* log = response.mutable_host_log();
                    std::uint64_t start = 0, end = 0;
                    log->set_text(hv.console(request.host_log().from(), start, end));
                    log->set_start(start);
                    log->set_end_of_log(end);
                    return response;
                }
                if (request.has_host_info()) {
                    *response.mutable_host_info() = daemon::read_host_info(device);
                    return response;
                }
                throw Error(ErrorCode::unsupported, "godwitd does not know this request "
                                                    "(CLI newer than the daemon?)");
            });
        boost::asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](boost::system::error_code, int sig) {
            spdlog::info("signal {}: shutting down", sig);
            io.stop();
        });
        spdlog::info("godwitd {} started (device {})", version(), device);
        if (ready_fd >= 0) {
            char ok = 0;
            (void)!::write(ready_fd, &ok, 1);
            ::close(ready_fd);
            // Up to here errors reached the starting shell; from now on only the log file.
            int null = ::open("/dev/null", O_WRONLY);
            if (null >= 0) {
                ::dup2(null, 2);
                ::close(null);
            }
        }
        io.run();
        vms.shutdown(std::chrono::seconds(10));
        spdlog::info("godwitd stopped");
        return 0;
    } catch (const Error& e) {
        spdlog::critical("godwitd: {}", e.what());
        std::cerr << "godwitd: error: " << e.what() << '\n';
        return exit_code_for(e.code());
    }
}
