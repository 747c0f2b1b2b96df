#include "godwit/vmm/vm_platform.hpp"

#include <cerrno>
#include <iterator>

#include <fmt/format.h>

#include "godwit/error.hpp"

namespace godwit::vmm {

namespace {

std::vector<std::uint8_t> read_whole_file(const std::filesystem::path& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (!std::filesystem::exists(path)) {
            throw Error(ErrorCode::not_found,
                        fmt::format("{} {} does not exist", what, path.string()));
        }
        throw system_error(fmt::format("opening {} {}", what, path.string()), errno);
    }
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// QEMU's "etc/e820" fw_cfg file: packed { le64 address; le64 length; le32 type; }.
std::vector<std::uint8_t> e820_file(const GuestMemory& memory) {
    std::vector<std::uint8_t> out;
    for (const MemoryMapEntry& e : memory_map(memory)) {
        for (auto [v, n] : {std::pair{e.address, 8u}, std::pair{e.length, 8u},
                            std::pair{std::uint64_t{e.type}, 4u}}) {
            auto le = fw_cfg_le(v, n);
            out.insert(out.end(), le.begin(), le.end());
        }
    }
    return out;
}

} // namespace

std::string VmStop::describe() const {
    switch (reason) {
    case Reason::debug_exit:
        return fmt::format("guest wrote {} to the debug-exit port (result {})", result >> 1,
                           result);
    case Reason::power_off:
        return "guest powered off (ACPI S5)";
    case Reason::shutdown:
        return "guest shut down (triple fault)";
    case Reason::requested:
        return "stopped on request";
    case Reason::failed:
        return "VMM failed: " + detail;
    default:
        return fmt::format("guest touched guest-physical address {:#x}, outside its RAM and "
                           "every device",
                           address);
    }
}

VmPlatform::VmPlatform(const VmDefinition& definition, Options options)
    : definition_(definition), options_(std::move(options)), memory_(definition.memory_mib << 20) {
    if (!options_.console_log.empty()) {
        console_log_.open(options_.console_log, std::ios::binary | std::ios::app);
        if (!console_log_) {
            throw system_error(fmt::format("opening console log {}", options_.console_log.string()),
                               errno);
        }
    }

    com1_ = std::make_shared<Uart16550>([this](std::uint8_t b) { console_byte(b); },
                                        [this](bool asserted) {
                                            if (options_.irq) {
                                                options_.irq(Uart16550::com1_irq, asserted);
                                            }
                                        });
    ports_.add(Uart16550::com1_base, Uart16550::port_count, com1_);
    ports_.add(DebugExit::port, DebugExit::port_count,
               std::make_shared<DebugExit>([this](std::uint32_t result) {
                   request_stop({.reason = VmStop::Reason::debug_exit, .result = result});
               }));
    fw_cfg_ =
        std::make_shared<FwCfg>(static_cast<std::uint16_t>(definition.vcpus), memory_.ram_size());
    ports_.add(FwCfg::base_port, FwCfg::port_count, fw_cfg_);
    pci_host_ = std::make_shared<PciHostBridge>();
    ports_.add(PciHostBridge::base_port, PciHostBridge::port_count, pci_host_);
    acpi_pm_ = std::make_shared<AcpiPmDevice>(true, AcpiPmDevice::Clock{}, [this] {
        request_stop({.reason = VmStop::Reason::power_off});
    });
    ports_.add(pm_base, AcpiPmDevice::length, acpi_pm_);

    AcpiConfig acpi_config;
    for (unsigned i = 0; i < definition.vcpus; ++i) {
        acpi_config.apic_ids.push_back(static_cast<std::uint8_t>(i));
    }
    acpi_config.pm_base = pm_base;
    acpi_ = build_acpi_tables(acpi_config);
    install_acpi_tables(memory_, acpi_);
    fw_cfg_->add_file("etc/e820", e820_file(memory_));

    if (options_.restoring) {
        return;
    }
    auto kernel = read_whole_file(definition.kernel, "kernel");
    BootImage image{kernel, definition.cmdline, {}, {}};
    for (const ModuleDefinition& m : definition.modules) {
        image.modules.push_back({read_whole_file(m.path, "module"), m.cmdline});
    }
    image.acpi_rsdp.assign(
        acpi_.bytes.begin() + static_cast<std::ptrdiff_t>(acpi_.rsdp - acpi_.base),
        acpi_.bytes.begin() + static_cast<std::ptrdiff_t>(acpi_.rsdp - acpi_.base) + 20);
    format_ = detect_kernel_format(kernel);
    loaded_ = load_kernel(memory_, image);

    vcpu_states_.push_back(loaded_.bsp);
    for (unsigned i = 1; i < definition.vcpus; ++i) {
        vcpu_states_.push_back(reset_vcpu_state(false));
    }
}

void VmPlatform::console_byte(std::uint8_t byte) {
    if (console_log_.is_open()) {
        console_log_.put(static_cast<char>(byte));
        if (byte == '\n') {
            console_log_.flush();
        }
    }
    if (options_.console_stream) {
        options_.console_stream(byte);
    }
}

void VmPlatform::handle_port_io(IoAccess& access) {
    ports_.dispatch(access);
}

void VmPlatform::handle_mmio(IoAccess& access) {
    if (!mmio_.dispatch(access)) {
        request_stop({.reason = VmStop::Reason::outside_ram, .address = access.address});
    }
}

void VmPlatform::request_stop(VmStop stop) {
    std::scoped_lock lock(stop_mutex_);
    if (!stop_) {
        stop_ = stop;
    }
    if (console_log_.is_open()) {
        console_log_.flush();
    }
}

std::optional<VmStop> VmPlatform::stop() const {
    std::scoped_lock lock(stop_mutex_);
    return stop_;
}

} // namespace godwit::vmm
