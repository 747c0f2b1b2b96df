// PCI host bridge with configuration mechanism #1 (PCI Local Bus spec 3.0 section 3.2.2.3.2):
// CONFIG_ADDRESS at 0xCF8 (32-bit: enable bit 31, bus 23:16, device 15:11, function 10:8,
// register 7:2) and CONFIG_DATA at 0xCFC-0xCFF. Bus 0 holds only the host bridge at
// 00:00.0; every other function reads all-ones (vendor ID 0xFFFF = nothing there) and
// ignores writes. Byte/word accesses to 0xCF8-0xCFB are not configuration cycles (0xCF9 is
// the reset control register on real chipsets) and are ignored.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>

#include "godwit/vmm/io_bus.hpp"

namespace godwit::vmm {

class PciHostBridge final : public IoDevice {
  public:
    static constexpr std::uint16_t base_port = 0xcf8;
    static constexpr std::uint16_t port_count = 8;
    // Identifies as an Intel 440FX host bridge, which every PC guest knows.
    static constexpr std::uint16_t vendor_id = 0x8086;
    static constexpr std::uint16_t device_id = 0x1237;

    PciHostBridge();
    std::string_view name() const override { return "pci-host"; }
    std::uint64_t read(std::uint64_t offset, unsigned size) override;
    void write(std::uint64_t offset, unsigned size, std::uint64_t value) override;

    struct State {
        std::uint32_t config_address;
        std::uint16_t bridge_command;
        bool operator==(const State&) const = default;
    };
    State save_state();
    void restore_state(const State& state);

    // Direct config-space read (bus, device, function, register byte offset).
    std::uint32_t config_read(unsigned bus, unsigned device, unsigned function, unsigned offset,
                              unsigned size) const;

  private:
    std::mutex mutex_;
    std::uint32_t address_ = 0;
    std::array<std::uint8_t, 256> bridge_config_{};
};

} // namespace godwit::vmm
