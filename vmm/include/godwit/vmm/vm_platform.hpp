// One VM's machine as the VMM builds it from a definition: guest RAM with the kernel,
// modules and ACPI tables loaded, the port and MMIO buses with the device set of
// docs/vm-devices.md, and the initial state of every vCPU. The integrator's vCPU threads
// feed I/O exit records to handle_port_io/handle_mmio and stop the VM once stop() is set.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "godwit/vmm/acpi.hpp"
#include "godwit/vmm/debug_exit.hpp"
#include "godwit/vmm/fw_cfg.hpp"
#include "godwit/vmm/guest_memory.hpp"
#include "godwit/vmm/io_bus.hpp"
#include "godwit/vmm/multiboot.hpp"
#include "godwit/vmm/pci_host.hpp"
#include "godwit/vmm/uart16550.hpp"
#include "godwit/vmm/vcpu_state.hpp"
#include "godwit/vmm/vm_definition.hpp"

namespace godwit::vmm {

struct VmStop {
    enum class Reason { debug_exit, power_off, outside_ram, shutdown, requested, failed };
    Reason reason;
    std::uint32_t result = 0;  // debug_exit: (value << 1) | 1
    std::uint64_t address = 0; // outside_ram: the guest-physical address touched
    std::string detail = {};   // failed: the error that ended the VM
    std::string describe() const;
};

class VmPlatform {
  public:
    struct Options {
        std::filesystem::path console_log;                    // COM1 output; empty: none
        std::function<void(std::uint8_t)> console_stream;     // `godwit vm console` feed
        std::function<void(unsigned irq, bool asserted)> irq; // to the virtual IOAPIC/PIC
        // The VM is being restored (migration, saved state): RAM and vCPUs come from the
        // stream, so the kernel and modules are not read or loaded (they need not exist).
        bool restoring = false;
    };
    static constexpr std::uint16_t pm_base = 0x600;

    VmPlatform(const VmDefinition& definition, Options options);

    GuestMemory& memory() { return memory_; }
    IoBus& ports() { return ports_; }
    IoBus& mmio() { return mmio_; }
    Uart16550& com1() { return *com1_; }
    FwCfg& fw_cfg() { return *fw_cfg_; }
    const AcpiTables& acpi() const { return acpi_; }
    const LoadedGuest& loaded() const { return loaded_; }
    KernelFormat kernel_format() const { return format_; }
    // vCPU 0 enters the kernel; the others wait for INIT-SIPI-SIPI.
    const std::vector<VcpuState>& initial_vcpu_states() const { return vcpu_states_; }

    // Port I/O exit: unclaimed reads return all-ones.
    void handle_port_io(IoAccess& access);
    // MMIO exit (an EPT violation outside RAM): a device or, for an address nothing claims,
    // the VM stops with outside_ram — this is how guest isolation surfaces in the VMM.
    void handle_mmio(IoAccess& access);
    std::optional<VmStop> stop() const;
    // Records why the VM stops; the first reason wins.
    void request_stop(VmStop stop);

    // Device-model state for migration (device_state.proto). Restore into a platform built
    // from the same definition; throws invalid_input for bytes that are not such a state.
    std::string save_device_state() const;
    void restore_device_state(const std::string& bytes);

  private:
    void console_byte(std::uint8_t byte);

    VmDefinition definition_;
    Options options_;
    GuestMemory memory_;
    IoBus ports_{"port"}, mmio_{"mmio"};
    std::shared_ptr<Uart16550> com1_;
    std::shared_ptr<FwCfg> fw_cfg_;
    std::shared_ptr<PciHostBridge> pci_host_;
    std::shared_ptr<AcpiPmDevice> acpi_pm_;
    AcpiTables acpi_;
    LoadedGuest loaded_;
    KernelFormat format_ = KernelFormat::unknown;
    std::vector<VcpuState> vcpu_states_;
    std::ofstream console_log_;
    mutable std::mutex stop_mutex_;
    std::optional<VmStop> stop_;
};

} // namespace godwit::vmm
