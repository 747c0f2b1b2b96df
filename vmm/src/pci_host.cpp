#include "godwit/vmm/pci_host.hpp"

namespace godwit::vmm {

namespace {
constexpr std::uint32_t enable_bit = 0x8000'0000;
constexpr unsigned command_register = 0x04;
// Command bits a host bridge lets software change: memory space, bus master.
constexpr std::uint16_t writable_command_bits = 0x0006;
} // namespace

PciHostBridge::PciHostBridge() {
    auto put16 = [&](unsigned off, std::uint16_t v) {
        bridge_config_[off] = static_cast<std::uint8_t>(v);
        bridge_config_[off + 1] = static_cast<std::uint8_t>(v >> 8);
    };
    put16(0x00, vendor_id);
    put16(0x02, device_id);
    put16(command_register, 0x0006);
    put16(0x06, 0x0000);         // status
    bridge_config_[0x08] = 0x02; // revision
    bridge_config_[0x09] = 0x00; // programming interface
    bridge_config_[0x0a] = 0x00; // subclass: host bridge
    bridge_config_[0x0b] = 0x06; // class: bridge device
    bridge_config_[0x0e] = 0x00; // header type 0, single function
}

std::uint32_t PciHostBridge::config_read(unsigned bus, unsigned device, unsigned function,
                                         unsigned offset, unsigned size) const {
    if (bus != 0 || device != 0 || function != 0 || offset + size > bridge_config_.size()) {
        return static_cast<std::uint32_t>(all_ones(size));
    }
    std::uint32_t value = 0;
    for (unsigned i = 0; i < size; ++i) {
        value |= std::uint32_t{bridge_config_[offset + i]} << (8 * i);
    }
    return value;
}

PciHostBridge::State PciHostBridge::save_state() {
    std::scoped_lock lock(mutex_);
    return {address_, static_cast<std::uint16_t>(bridge_config_[command_register] |
                                                 (bridge_config_[command_register + 1] << 8))};
}

void PciHostBridge::restore_state(const State& state) {
    std::scoped_lock lock(mutex_);
    address_ = state.config_address & 0x80ff'fffc;
    std::uint16_t command = state.bridge_command & writable_command_bits;
    bridge_config_[command_register] = static_cast<std::uint8_t>(command);
    bridge_config_[command_register + 1] = static_cast<std::uint8_t>(command >> 8);
}

std::uint64_t PciHostBridge::read(std::uint64_t offset, unsigned size) {
    std::scoped_lock lock(mutex_);
    if (offset < 4) {
        return (offset == 0 && size == 4) ? address_ : all_ones(size);
    }
    if (!(address_ & enable_bit)) {
        return all_ones(size);
    }
    unsigned bus = (address_ >> 16) & 0xff, device = (address_ >> 11) & 0x1f,
             function = (address_ >> 8) & 0x7;
    unsigned reg = (address_ & 0xfc) + static_cast<unsigned>(offset - 4);
    return config_read(bus, device, function, reg, size);
}

void PciHostBridge::write(std::uint64_t offset, unsigned size, std::uint64_t value) {
    std::scoped_lock lock(mutex_);
    if (offset < 4) {
        if (offset == 0 && size == 4) {
            address_ = static_cast<std::uint32_t>(value) & 0x80ff'fffc;
        }
        return;
    }
    if (!(address_ & enable_bit) || (address_ & 0x00ff'ff00) != 0) {
        return; // disabled, or not the host bridge at 00:00.0
    }
    unsigned reg = (address_ & 0xfc) + static_cast<unsigned>(offset - 4);
    for (unsigned i = 0; i < size; ++i) {
        unsigned byte_offset = reg + i;
        if (byte_offset == command_register || byte_offset == command_register + 1) {
            unsigned shift = 8 * (byte_offset - command_register);
            std::uint8_t mask = static_cast<std::uint8_t>(writable_command_bits >> shift);
            std::uint8_t byte = static_cast<std::uint8_t>(value >> (8 * i));
            bridge_config_[byte_offset] =
                static_cast<std::uint8_t>((bridge_config_[byte_offset] & ~mask) | (byte & mask));
        }
        // Everything else in the bridge's header is read-only here.
    }
}

} // namespace godwit::vmm
