// VmPlatform's device-state save/restore through device_state.proto.
#include <fmt/format.h>

#include "device_state.pb.h"
#include "godwit/error.hpp"
#include "godwit/vmm/vm_platform.hpp"

namespace godwit::vmm {

namespace {
std::uint8_t byte_field(std::uint32_t v, const char* what) {
    if (v > 0xff) {
        throw Error(ErrorCode::invalid_input,
                    fmt::format("device state: {} value {:#x} does not fit a register", what, v));
    }
    return static_cast<std::uint8_t>(v);
}

std::uint16_t word_field(std::uint32_t v, const char* what) {
    if (v > 0xffff) {
        throw Error(ErrorCode::invalid_input,
                    fmt::format("device state: {} value {:#x} does not fit a register", what, v));
    }
    return static_cast<std::uint16_t>(v);
}
} // namespace

std::string VmPlatform::save_device_state() const {
    proto::VmDeviceState p;
    p.set_version(1);
    Uart16550::State u = com1_->save_state();
    auto* pu = p.mutable_com1();
    pu->set_rx_fifo(std::string(u.rx_fifo.begin(), u.rx_fifo.end()));
    pu->set_dll(u.dll);
    pu->set_dlm(u.dlm);
    pu->set_ier(u.ier);
    pu->set_fcr(u.fcr);
    pu->set_lcr(u.lcr);
    pu->set_mcr(u.mcr);
    pu->set_scr(u.scr);
    pu->set_msr_deltas(u.msr_deltas);
    pu->set_overrun(u.overrun);
    pu->set_thre_pending(u.thre_pending);
    FwCfg::State f = fw_cfg_->save_state();
    p.mutable_fw_cfg()->set_selector(f.selector);
    p.mutable_fw_cfg()->set_offset(f.offset);
    PciHostBridge::State c = pci_host_->save_state();
    p.mutable_pci_host()->set_config_address(c.config_address);
    p.mutable_pci_host()->set_bridge_command(c.bridge_command);
    AcpiPmDevice::State a = acpi_pm_->save_state();
    p.mutable_acpi_pm()->set_pm1_status(a.pm1_status);
    p.mutable_acpi_pm()->set_pm1_enable(a.pm1_enable);
    p.mutable_acpi_pm()->set_pm1_control(a.pm1_control);
    p.mutable_acpi_pm()->set_timer(a.timer);
    std::string out;
    if (!p.SerializeToString(&out)) {
        throw Error(ErrorCode::internal, "device state: protobuf serialization failed");
    }
    return out;
}

void VmPlatform::restore_device_state(const std::string& bytes) {
    proto::VmDeviceState p;
    if (!p.ParseFromString(bytes)) {
        throw Error(ErrorCode::invalid_input, "device state: not a VmDeviceState message");
    }
    if (p.version() != 1) {
        throw Error(
            ErrorCode::unsupported,
            fmt::format("device state: version {} (this VMM reads version 1)", p.version()));
    }
    const auto& pu = p.com1();
    if (pu.rx_fifo().size() > Uart16550::fifo_size) {
        throw Error(ErrorCode::invalid_input, "device state: COM1 receive FIFO over 16 bytes");
    }
    Uart16550::State u{{pu.rx_fifo().begin(), pu.rx_fifo().end()},
                       byte_field(pu.dll(), "COM1 DLL"),
                       byte_field(pu.dlm(), "COM1 DLM"),
                       byte_field(pu.ier(), "COM1 IER"),
                       byte_field(pu.fcr(), "COM1 FCR"),
                       byte_field(pu.lcr(), "COM1 LCR"),
                       byte_field(pu.mcr(), "COM1 MCR"),
                       byte_field(pu.scr(), "COM1 SCR"),
                       byte_field(pu.msr_deltas(), "COM1 MSR deltas"),
                       pu.overrun(),
                       pu.thre_pending()};
    FwCfg::State f{word_field(p.fw_cfg().selector(), "fw_cfg selector"), p.fw_cfg().offset()};
    PciHostBridge::State c{p.pci_host().config_address(),
                           word_field(p.pci_host().bridge_command(), "PCI command")};
    AcpiPmDevice::State a{word_field(p.acpi_pm().pm1_status(), "PM1 status"),
                          word_field(p.acpi_pm().pm1_enable(), "PM1 enable"),
                          word_field(p.acpi_pm().pm1_control(), "PM1 control"),
                          p.acpi_pm().timer()};
    // Everything validated: apply.
    com1_->restore_state(u);
    fw_cfg_->restore_state(f);
    pci_host_->restore_state(c);
    acpi_pm_->restore_state(a);
}

} // namespace godwit::vmm
