#include "worker_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "godwit/error.hpp"

namespace godwit::daemon {

namespace {
constexpr int child_ready_fd = 3;    // the worker sees the pipe as fd 3
constexpr int child_incoming_fd = 4; // and an incoming migration's connection as fd 4
constexpr const char* worker_name = "godwit-vm-worker";
} // namespace

std::filesystem::path default_worker_program() {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        auto beside = self.parent_path() / worker_name;
        if (std::filesystem::exists(beside, ec)) {
            return beside;
        }
    }
    return worker_name;
}

SpawnedWorker spawn_worker(const WorkerCommand& c) {
    // Everything the child needs is prepared before fork: after it only async-signal-safe
    // calls are allowed.
    std::vector<std::string> args = {c.program.string(),
                                     "--device",
                                     c.device,
                                     "--ready-fd",
                                     std::to_string(child_ready_fd),
                                     "--tls-dir",
                                     c.tls_dir.string()};
    if (c.incoming_fd >= 0) {
        args.insert(args.end(),
                    {"--incoming-fd", std::to_string(child_incoming_fd), "--run-root",
                     c.run_root.string(), "--control-socket", c.control_socket.string()});
    } else {
        args.insert(args.end(), {"--run-dir", c.run_dir.string()});
    }
    if (!c.definition.empty()) {
        args.insert(args.end(), {"--definition", c.definition.string()});
    }
    if (!c.restore_from.empty()) {
        args.insert(args.end(), {"--restore-from", c.restore_from.string(), "--name", c.name});
    }
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::string log = c.log.string();
    int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        throw system_error("creating worker log " + log, errno);
    }
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        int err = errno;
        ::close(log_fd);
        throw system_error("pipe for the VM worker", err);
    }
    // The child's dup2 onto fds 3 and 4 must not overwrite its source: keep the connection
    // above them.
    int incoming = -1;
    if (c.incoming_fd >= 0) {
        incoming = ::fcntl(c.incoming_fd, F_DUPFD_CLOEXEC, 10);
        if (incoming < 0) {
            int err = errno;
            ::close(log_fd);
            ::close(pipe_fds[0]);
            ::close(pipe_fds[1]);
            throw system_error("the incoming migration's connection", err);
        }
    }
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) {
        int err = errno;
        ::close(log_fd);
        ::close(pipe_fds[0]);
        ::close(pipe_fds[1]);
        if (incoming >= 0) {
            ::close(incoming);
        }
        throw system_error("fork for the VM worker", err);
    }
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) {
            ::_exit(127); // godwitd died before prctl took effect
        }
        ::setpgid(0, 0); // a terminal's Ctrl-C for a foreground godwitd is not for the VMs
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        int null = ::open("/dev/null", O_RDONLY);
        if (null >= 0) {
            ::dup2(null, 0);
        }
        ::dup2(log_fd, 1);
        ::dup2(log_fd, 2);
        ::dup2(pipe_fds[1], child_ready_fd); // dup2 clears O_CLOEXEC on the copy
        if (incoming >= 0) {
            ::dup2(incoming, child_incoming_fd);
        }
        ::execvp(argv[0], argv.data());
        const char* msg = "godwit-vm-worker could not be executed: ";
        (void)!::write(2, msg, std::strlen(msg));
        const char* why = std::strerror(errno);
        (void)!::write(2, why, std::strlen(why));
        (void)!::write(2, "\n", 1);
        ::_exit(127);
    }
    ::close(log_fd);
    ::close(pipe_fds[1]);
    if (incoming >= 0) {
        ::close(incoming);
    }
    return SpawnedWorker{pid, pipe_fds[0]};
}

std::string last_log_line(const std::filesystem::path& log, std::size_t max) {
    std::ifstream in(log);
    std::string line, last;
    while (std::getline(in, line)) {
        if (line.find_first_not_of(" \t\r") != std::string::npos) {
            last = line;
        }
    }
    if (last.size() > max) {
        last = last.substr(0, max) + "...";
    }
    return last;
}

} // namespace godwit::daemon
