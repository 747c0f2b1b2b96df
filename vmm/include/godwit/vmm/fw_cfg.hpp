// fw_cfg, the firmware configuration interface of QEMU (docs/specs/fw_cfg.txt), traditional
// I/O-port interface only: a 16-bit selector at 0x510 and a byte-wide data port at 0x511.
// Items are little-endian integers or byte blobs; named files are listed in the big-endian
// file directory at selector 0x19. No DMA interface (FW_CFG_ID reports bit 0 only); writes
// through the data port are ignored, as in QEMU since 2.4.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "godwit/vmm/io_bus.hpp"

namespace godwit::vmm {

class FwCfg final : public IoDevice {
  public:
    static constexpr std::uint16_t base_port = 0x510; // selector; data at base_port + 1
    static constexpr std::uint16_t port_count = 2;

    // Selector keys (fw_cfg.txt "Selector Register").
    static constexpr std::uint16_t key_signature = 0x00;
    static constexpr std::uint16_t key_id = 0x01;
    static constexpr std::uint16_t key_ram_size = 0x03;
    static constexpr std::uint16_t key_nb_cpus = 0x05;
    static constexpr std::uint16_t key_max_cpus = 0x0f;
    static constexpr std::uint16_t key_file_dir = 0x19;
    static constexpr std::uint16_t key_file_first = 0x20;
    static constexpr std::uint16_t key_write_channel = 0x4000;
    static constexpr std::size_t file_name_size = 56;

    FwCfg(std::uint16_t cpu_count, std::uint64_t ram_size);

    // Adds a named file (e.g. "etc/e820"); it gets the next selector from 0x20 on.
    std::uint16_t add_file(const std::string& name, std::vector<std::uint8_t> contents);
    void set_item(std::uint16_t key, std::vector<std::uint8_t> contents);
    const std::vector<std::uint8_t>* item(std::uint16_t key) const;

    // The guest-visible position: selected item and offset into it.
    struct State {
        std::uint16_t selector;
        std::uint64_t offset;
        bool operator==(const State&) const = default;
    };
    State save_state() const;
    void restore_state(const State& state);

    std::string_view name() const override { return "fw_cfg"; }
    std::uint64_t read(std::uint64_t offset, unsigned size) override;
    void write(std::uint64_t offset, unsigned size, std::uint64_t value) override;

  private:
    void rebuild_file_directory();

    mutable std::mutex mutex_;
    std::map<std::uint16_t, std::vector<std::uint8_t>> items_;
    std::vector<std::pair<std::string, std::uint16_t>> files_; // in directory order
    std::uint16_t selector_ = 0;
    std::size_t offset_ = 0;
};

// Little-endian encoding of an integer fw_cfg item.
std::vector<std::uint8_t> fw_cfg_le(std::uint64_t value, unsigned bytes);

} // namespace godwit::vmm
