// The source side of a migration in the VM worker: a thread that connects to the
// destination's migration listener (mutually authenticated TLS), runs the migration engine
// over the running VM and keeps the status document up to date. The VM keeps running here
// until the destination acknowledges the whole stream; then the worker stops it (the VM
// lives on there). Any failure or a cancel leaves it running here, unchanged.
#pragma once

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include "godwit/vmm/migration_control.hpp"
#include "godwit/vmm/partition_access.hpp"
#include "godwit/vmm/vm_definition.hpp"
#include "godwit/vmm/vm_platform.hpp"
#include "godwit/vmm/vm_runner.hpp"

namespace godwit::vmm {

class OutgoingMigration {
  public:
    OutgoingMigration(VmRunner& runner, const VmDefinition& definition, VmPlatform& platform,
                      PartitionAccess& partition, std::filesystem::path status_file);
    ~OutgoingMigration(); // cancels and joins a migration still running
    OutgoingMigration(const OutgoingMigration&) = delete;
    OutgoingMigration& operator=(const OutgoingMigration&) = delete;

    // Starts migrating on a thread; false (and nothing changes) while one is under way.
    bool start(const MigrateRequest& request);
    void cancel() { cancel_.store(true); }
    // Waits for a migration under way (after cancel() it ends soon).
    void join();
    // "HOST:PORT" once a migration succeeded (the VM must not run here any more), else "".
    std::string migrated_to() const;

  private:
    void run(MigrateRequest request);
    void publish(MigrationStatus status);

    VmRunner& runner_;
    VmDefinition definition_;
    VmPlatform& platform_;
    PartitionAccess& partition_;
    std::filesystem::path status_file_;
    std::atomic<bool> busy_{false}, cancel_{false};
    mutable std::mutex mutex_; // migrated_to_, thread_
    std::string migrated_to_;
    std::thread thread_;
};

} // namespace godwit::vmm
