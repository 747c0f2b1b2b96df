// Starting one VM worker process (godwit-vm-worker) for godwitd: fork + exec with its output
// in a log file and a pipe on which it says "running". The worker dies with godwitd
// (PR_SET_PDEATHSIG), so a crashed daemon never leaves partitions nobody manages; the root
// driver destroys a partition when its worker's /dev/godwit descriptor closes.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace godwit::daemon {

struct WorkerCommand {
    std::filesystem::path program = {};      // godwit-vm-worker
    std::filesystem::path definition = {};   // the stored definition file (not for incoming)
    std::filesystem::path run_dir = {};      // RUN_DIR/NAME (vm_run_files.hpp); incoming: empty
    std::filesystem::path log = {};          // its stdout and stderr
    std::string device = {};                 // /dev/godwit
    std::filesystem::path tls_dir = {};      // migration credentials (ca.pem, host.pem, host.key)
    std::filesystem::path restore_from = {}; // non-empty: restore the VM from this saved state
    std::string name = {};                   // with restore_from: the VM's name
    // >= 0: receive a VM by migration on this accepted connection (the child gets a copy;
    // the caller closes its own); the worker then asks `control_socket` to adopt it and
    // keeps its files in run_root/NAME.
    int incoming_fd = -1;
    std::filesystem::path run_root = {};
    std::filesystem::path control_socket = {};
};

struct SpawnedWorker {
    pid_t pid = -1;
    int ready_fd = -1; // read end: one byte when the VM runs, EOF when the worker ends
};

// Throws Error(io) when the process cannot be created; an exec failure shows up as the
// worker exiting with status 127 and the reason in its log.
SpawnedWorker spawn_worker(const WorkerCommand& command);

// The worker program next to this executable (/proc/self/exe's directory), else the bare
// name for a PATH lookup.
std::filesystem::path default_worker_program();

// Last non-empty line of a log file, at most `max` characters; empty when unreadable.
std::string last_log_line(const std::filesystem::path& log, std::size_t max = 300);

} // namespace godwit::daemon
