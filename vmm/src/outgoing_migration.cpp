#include "godwit/vmm/outgoing_migration.hpp"

#include <chrono>
#include <iostream>

#include "godwit/error.hpp"
#include "godwit/vmm/vm_migration.hpp"

namespace godwit::vmm {

namespace {
// The status file is for people and the CLI's progress bar: a few updates a second is
// plenty, and each one is a file write in the root partition.
constexpr auto progress_interval = std::chrono::milliseconds(250);
// Connecting and the TLS handshake; the engine has its own timeouts for the stream.
constexpr auto connect_timeout = std::chrono::seconds(30);
} // namespace

OutgoingMigration::OutgoingMigration(VmRunner& runner, const VmDefinition& definition,
                                     VmPlatform& platform, PartitionAccess& partition,
                                     std::filesystem::path status_file)
    : runner_(runner), definition_(definition), platform_(platform), partition_(partition),
      status_file_(std::move(status_file)) {}

OutgoingMigration::~OutgoingMigration() {
    cancel();
    join();
}

bool OutgoingMigration::start(const MigrateRequest& request) {
    if (busy_.exchange(true)) {
        return false;
    }
    join(); // the previous (finished) thread
    cancel_.store(false);
    std::scoped_lock lock(mutex_);
    thread_ = std::thread([this, request] { run(request); });
    return true;
}

void OutgoingMigration::join() {
    std::thread finished;
    {
        std::scoped_lock lock(mutex_);
        finished = std::move(thread_);
    }
    if (finished.joinable()) {
        finished.join();
    }
}

std::string OutgoingMigration::migrated_to() const {
    std::scoped_lock lock(mutex_);
    return migrated_to_;
}

void OutgoingMigration::publish(MigrationStatus status) {
    try {
        write_migration_status(status_file_, status);
    } catch (const Error& e) {
        std::cerr << "godwit-vm-worker: migration status: " << e.what() << std::endl;
    }
}

void OutgoingMigration::run(MigrateRequest request) {
    MigrationStatus status;
    status.destination = request.destination.to_string();
    status.live = request.live;
    status.state = "starting";
    publish(status);
    std::cerr << "godwit-vm-worker: " << (request.live ? "live" : "quick") << " migration of '"
              << definition_.name << "' to " << status.destination << std::endl;
    try {
        auto channel =
            migration::connect_channel(request.destination.host, request.destination.port,
                                       tls_from_dir(request.tls_dir), connect_timeout);
        status.state = "running";
        publish(status);
        MigrationMemory memory(platform_.memory());
        PartitionDirtyLog dirty(partition_);
        RunnerControl control(runner_);
        VmStateSaver saver(definition_, platform_, partition_);
        migration::SourceOptions options;
        options.vm_name = definition_.name;
        options.live = request.live;
        if (request.downtime_limit_ms > 0) {
            options.downtime_limit_ms = request.downtime_limit_ms;
        }
        options.bandwidth_limit = request.bandwidth_bytes_per_s;
        options.cancel = &cancel_;
        // No whole-memory SHA-256 at switchover between hosts: it is computed while the VM is
        // paused, on both ends, so it costs downtime in proportion to the VM's size (seconds
        // for a large VM). Frames carry CRCs, TLS authenticates every record, and the
        // destination checks the stream's structure; `vm save` files keep the digest.
        options.digest = false;
        auto last = std::chrono::steady_clock::time_point{};
        migration::Phase last_phase = migration::Phase::setup;
        options.on_progress = [&](const migration::Progress& p) {
            auto now = std::chrono::steady_clock::now();
            if (now - last < progress_interval && p.phase == last_phase) {
                return;
            }
            last = now;
            last_phase = p.phase;
            status.progress = progress_to_json(p);
            publish(status);
        };
        migration::Report report =
            migration::migrate_out(*channel, memory, dirty, control, saver, options);
        status.report = report.to_json();
        if (report.ok) {
            status.state = "completed";
            {
                std::scoped_lock lock(mutex_);
                migrated_to_ = status.destination;
            }
            runner_.request_stop(); // the destination runs it now
        } else {
            status.state = report.phase == migration::Phase::cancelled ? "cancelled" : "failed";
            status.error = report.error;
        }
    } catch (const Error& e) {
        status.state = "failed";
        status.error = e.what();
    }
    std::cerr << "godwit-vm-worker: migration to " << status.destination << ": " << status.state
              << (status.error.empty() ? "" : ": " + status.error) << std::endl;
    publish(status);
    busy_.store(false);
}

} // namespace godwit::vmm
