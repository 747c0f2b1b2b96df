// Migration of real VMs: the VMM's side of the migration engine's interfaces
// (migration/include/godwit/migration/vm_interfaces.hpp, docs/migration-stream.md "VM state
// records"). A VM's page frame number is its guest-physical page number, from 0 to the end
// of its highest RAM range; pages in holes (the PCI hole below 4 GiB) read as zeros.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "godwit/migration/migration.hpp"
#include "godwit/migration/vm_interfaces.hpp"
#include "godwit/vmm/partition_access.hpp"
#include "godwit/vmm/vm_platform.hpp"
#include "godwit/vmm/vm_runner.hpp"

namespace godwit::vmm {

// Guest RAM as migration pages. Writing a non-zero page into a hole is a stream error.
class MigrationMemory final : public migration::GuestMemory {
  public:
    explicit MigrationMemory(vmm::GuestMemory& memory) : memory_(memory) {}
    std::uint64_t page_count() const override;
    void read_page(std::uint64_t pfn, std::uint8_t* out) const override;
    void write_page(std::uint64_t pfn, const std::uint8_t* in) override;

  private:
    vmm::GuestMemory& memory_;
};

// The hypervisor's dirty log, trimmed to the VM's page count.
class PartitionDirtyLog final : public migration::DirtyLog {
  public:
    explicit PartitionDirtyLog(PartitionAccess& partition) : partition_(partition) {}
    void enable() override { partition_.dirty_log_enable(); }
    void disable() override { partition_.dirty_log_disable(); }
    void fetch_and_clear(std::vector<std::uint64_t>& bitmap) override {
        partition_.dirty_log_fetch(bitmap);
    }

  private:
    PartitionAccess& partition_;
};

// Pause/resume and auto-converge's throttle through VmRunner (its vCPU threads sleep a
// share of every timeslice: VmRunner::set_throttle).
class RunnerControl final : public migration::VmControl {
  public:
    explicit RunnerControl(VmRunner& runner) : runner_(runner) {}
    void pause() override; // Error(conflict) when the VM stopped meanwhile
    void resume() override { runner_.resume(); }
    void set_throttle(unsigned percent) override { runner_.set_throttle(percent); }
    unsigned throttle() const { return runner_.throttle(); }

  private:
    VmRunner& runner_;
};

// Blob kinds of a VM's state records (docs/migration-stream.md "VM state records").
namespace state_kind {
inline constexpr const char* definition = "vm";         // id "definition": VM definition JSON
inline constexpr const char* vcpu = "vcpu";             // id = index: vcpu_state.proto
inline constexpr const char* vcpu_extra = "vcpu-extra"; // id = index: hypervisor blob
inline constexpr const char* irqchip = "irqchip";       // id "ioapic": hypervisor blob
inline constexpr const char* device = "device";         // id "platform": device_state.proto
} // namespace state_kind

// Everything of a paused VM besides its RAM.
class VmStateSaver final : public migration::StateProvider {
  public:
    VmStateSaver(const VmDefinition& definition, VmPlatform& platform, PartitionAccess& partition)
        : definition_(definition), platform_(platform), partition_(partition) {}
    std::vector<migration::StateBlob> save_state() override;
    // Restoring goes through VmReceiver (a new VM); restoring over a running VM is refused.
    void restore_state(const std::vector<migration::StateBlob>& blobs) override;

  private:
    VmDefinition definition_;
    VmPlatform& platform_;
    PartitionAccess& partition_;
};

// The destination's VM: pages land in an anonymous staging mapping (the definition, which
// sizes the real VM, only arrives with the state records after the pages); restore() builds
// the VmPlatform without loading the kernel, the partition through `make_partition`, copies
// the pages in and restores every vCPU, the IOAPIC and the devices.
class VmReceiver final : public migration::IncomingVm {
  public:
    using PartitionFactory =
        std::function<PartitionAccess&(VmPlatform& platform, const VmDefinition& definition)>;
    struct Options {
        std::string rename;              // non-empty: the VM's new name
        VmPlatform::Options platform;    // console etc. of the restored VM
        PartitionFactory make_partition; // creates the partition for the VM's memory
        // Accepts (throws to refuse: free memory, name) the definition once every state
        // record has arrived and before anything is built; may adjust the platform options
        // (a VM arriving by migration learns where its console goes only then).
        std::function<void(const VmDefinition&, VmPlatform::Options&)> check;
    };
    explicit VmReceiver(Options options);
    ~VmReceiver() override;

    migration::GuestMemory& create(const std::string& name, std::uint64_t page_count) override;
    void restore(const std::vector<migration::StateBlob>& state) override;
    void start() override { started_ = true; }
    void discard() override;

    bool started() const { return started_; }
    const VmDefinition& definition() const { return definition_; }
    VmPlatform& platform() { return *platform_; }
    // The restored vCPU states (the worker's runner needs nothing else: they are set).
    unsigned vcpus() const { return definition_.vcpus; }
    // How long restore() spent on each step (the destination's share of the downtime).
    struct RestoreTimings {
        double check_ms = 0;     // Options::check: godwitd's adoption, for a migration
        double devices_ms = 0;   // the platform: guest memory mapping and device state
        double memory_ms = 0;    // staged pages moved into guest memory
        double partition_ms = 0; // the hypervisor partition and its vCPU/irqchip state
    };
    const RestoreTimings& restore_timings() const { return timings_; }

  private:
    class Staging;
    RestoreTimings timings_;
    Options options_;
    std::unique_ptr<Staging> staging_;
    VmDefinition definition_;
    std::unique_ptr<VmPlatform> platform_;
    bool started_ = false;
};

// Reads and checks a whole saved state (godwit vm save) and returns the VM's definition, so
// godwitd can register the VM before a worker restores it. Error(invalid_input) with the
// stream parser's reason for a file that is not a complete saved VM.
VmDefinition inspect_saved_vm(const std::string& path);

} // namespace godwit::vmm
