#include "worker_process.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

using namespace godwit::daemon;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/godwit-worker-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
};

WorkerCommand command_in(const TempDir& dir, const fs::path& program) {
    return {.program = program,
            .definition = dir.path / "vm.json",
            .run_dir = dir.path,
            .log = dir.path / "worker.log",
            .device = "/dev/godwit",
            .tls_dir = dir.path / "tls"};
}

int wait_for(pid_t pid) {
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, 0), pid);
    return status;
}

} // namespace

TEST(WorkerProcess, RunsTheProgramWithTheContractsArgumentsLogAndReadyPipe) {
    TempDir dir;
    fs::path script = dir.path / "worker.sh";
    std::ofstream(script) << "#!/bin/sh\n"
                             "echo \"args: $*\"\n"
                             "echo 'to stderr' >&2\n"
                             "printf R >&3\n"
                             "exit 4\n";
    fs::permissions(script, fs::perms::owner_all);
    SpawnedWorker worker = spawn_worker(command_in(dir, script));
    ASSERT_GT(worker.pid, 0);
    char byte = 0;
    EXPECT_EQ(::read(worker.ready_fd, &byte, 1), 1);
    EXPECT_EQ(byte, 'R');
    int status = wait_for(worker.pid);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 4);
    EXPECT_EQ(::read(worker.ready_fd, &byte, 1), 0) << "EOF once the worker is gone";
    ::close(worker.ready_fd);

    std::ifstream log(dir.path / "worker.log");
    std::string first;
    std::getline(log, first);
    EXPECT_NE(first.find("--definition " + (dir.path / "vm.json").string()), std::string::npos)
        << first;
    EXPECT_NE(first.find("--ready-fd 3"), std::string::npos) << first;
    EXPECT_NE(first.find("--device /dev/godwit"), std::string::npos) << first;
    EXPECT_NE(first.find("--run-dir " + dir.path.string()), std::string::npos) << first;
    EXPECT_NE(first.find("--tls-dir " + (dir.path / "tls").string()), std::string::npos) << first;
    EXPECT_EQ(first.find("--incoming-fd"), std::string::npos) << first;
    EXPECT_EQ(last_log_line(dir.path / "worker.log"), "to stderr");
}

TEST(WorkerProcess, AnIncomingWorkerGetsTheConnectionAsFd4AndNoDefinition) {
    TempDir dir;
    fs::path script = dir.path / "worker.sh";
    std::ofstream(script) << "#!/bin/sh\n"
                             "echo \"args: $*\"\n"
                             "cat <&4 >&2\n" // what the peer sent, through fd 4
                             "exit 0\n";
    fs::permissions(script, fs::perms::owner_all);
    int sockets[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets), 0);
    WorkerCommand command{.program = script,
                          .log = dir.path / "incoming.log",
                          .device = "/dev/godwit",
                          .tls_dir = dir.path / "tls",
                          .incoming_fd = sockets[0],
                          .run_root = dir.path / "run",
                          .control_socket = dir.path / "godwitd.sock"};
    SpawnedWorker worker = spawn_worker(command);
    ::close(sockets[0]); // the caller closes its copy, as godwitd does
    ASSERT_EQ(::write(sockets[1], "from the source\n", 16), 16);
    ::close(sockets[1]);
    int status = wait_for(worker.pid);
    ::close(worker.ready_fd);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    std::ifstream log(dir.path / "incoming.log");
    std::string first;
    std::getline(log, first);
    EXPECT_NE(first.find("--incoming-fd 4"), std::string::npos) << first;
    EXPECT_NE(first.find("--run-root " + (dir.path / "run").string()), std::string::npos) << first;
    EXPECT_NE(first.find("--control-socket " + (dir.path / "godwitd.sock").string()),
              std::string::npos)
        << first;
    EXPECT_EQ(first.find("--definition"), std::string::npos) << first;
    EXPECT_EQ(first.find("--run-dir"), std::string::npos) << first;
    EXPECT_EQ(last_log_line(dir.path / "incoming.log"), "from the source");
}

TEST(WorkerProcess, AMissingProgramEndsWith127AndSaysWhy) {
    TempDir dir;
    SpawnedWorker worker = spawn_worker(command_in(dir, dir.path / "no-such-worker"));
    int status = wait_for(worker.pid);
    ::close(worker.ready_fd);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 127);
    std::string why = last_log_line(dir.path / "worker.log");
    EXPECT_NE(why.find("could not be executed: No such file or directory"), std::string::npos)
        << why;
}

TEST(WorkerProcess, LastLogLineSkipsBlankLinesAndIsBounded) {
    TempDir dir;
    fs::path log = dir.path / "w.log";
    std::ofstream(log) << "first\nthe reason\n\n   \n";
    EXPECT_EQ(last_log_line(log), "the reason");
    std::ofstream(log) << std::string(1000, 'x') << "\n";
    EXPECT_EQ(last_log_line(log, 10), std::string(10, 'x') + "...");
    EXPECT_EQ(last_log_line(dir.path / "missing.log"), "");
}
