#include "godwit/vmm/fw_cfg.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "godwit/error.hpp"

namespace godwit::vmm {

std::vector<std::uint8_t> fw_cfg_le(std::uint64_t value, unsigned bytes) {
    std::vector<std::uint8_t> out(bytes);
    for (unsigned i = 0; i < bytes; ++i) {
        out[i] = static_cast<std::uint8_t>(value >> (8 * i));
    }
    return out;
}

FwCfg::FwCfg(std::uint16_t cpu_count, std::uint64_t ram_size) {
    items_[key_signature] = {'Q', 'E', 'M', 'U'};
    items_[key_id] = fw_cfg_le(1, 4); // bit 0: traditional interface; no DMA
    items_[key_ram_size] = fw_cfg_le(ram_size, 8);
    items_[key_nb_cpus] = fw_cfg_le(cpu_count, 2);
    items_[key_max_cpus] = fw_cfg_le(cpu_count, 2);
    rebuild_file_directory();
}

void FwCfg::set_item(std::uint16_t key, std::vector<std::uint8_t> contents) {
    std::scoped_lock lock(mutex_);
    if (key == key_file_dir) {
        throw Error(ErrorCode::internal, "fw_cfg: the file directory is built from add_file");
    }
    items_[key] = std::move(contents);
}

std::uint16_t FwCfg::add_file(const std::string& name, std::vector<std::uint8_t> contents) {
    std::scoped_lock lock(mutex_);
    if (name.empty() || name.size() >= file_name_size) {
        throw Error(
            ErrorCode::invalid_input,
            fmt::format("fw_cfg file name '{}' must be 1..{} bytes", name, file_name_size - 1));
    }
    if (std::any_of(files_.begin(), files_.end(), [&](const auto& f) { return f.first == name; })) {
        throw Error(ErrorCode::conflict, fmt::format("fw_cfg file '{}' already exists", name));
    }
    auto key = static_cast<std::uint16_t>(key_file_first + files_.size());
    if (key >= key_write_channel) {
        throw Error(ErrorCode::unsupported, "fw_cfg: no selector left for another file");
    }
    items_[key] = std::move(contents);
    files_.emplace_back(name, key);
    rebuild_file_directory();
    return key;
}

const std::vector<std::uint8_t>* FwCfg::item(std::uint16_t key) const {
    std::scoped_lock lock(mutex_);
    auto it = items_.find(key);
    return it == items_.end() ? nullptr : &it->second;
}

FwCfg::State FwCfg::save_state() const {
    std::scoped_lock lock(mutex_);
    return {selector_, offset_};
}

void FwCfg::restore_state(const State& state) {
    std::scoped_lock lock(mutex_);
    selector_ = state.selector;
    offset_ = static_cast<std::size_t>(state.offset);
}

void FwCfg::rebuild_file_directory() {
    // struct FWCfgFiles { be32 count; struct FWCfgFile { be32 size; be16 select;
    // be16 reserved; char name[56]; } f[]; } — sorted by name, as QEMU does.
    auto sorted = files_;
    std::sort(sorted.begin(), sorted.end());
    std::vector<std::uint8_t> dir;
    auto put_be = [&](std::uint64_t v, unsigned bytes) {
        for (unsigned i = bytes; i-- > 0;) {
            dir.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
        }
    };
    put_be(sorted.size(), 4);
    for (const auto& [file_name, key] : sorted) {
        put_be(items_.at(key).size(), 4);
        put_be(key, 2);
        put_be(0, 2);
        std::uint8_t name_field[file_name_size] = {};
        std::copy(file_name.begin(), file_name.end(), name_field);
        dir.insert(dir.end(), name_field, name_field + file_name_size);
    }
    items_[key_file_dir] = std::move(dir);
}

std::uint64_t FwCfg::read(std::uint64_t offset, unsigned size) {
    std::scoped_lock lock(mutex_);
    if (offset == 0) {
        return 0; // the selector register is write-only
    }
    // Data port: each byte read advances through the selected item; past its end, 0.
    auto it = items_.find(static_cast<std::uint16_t>(selector_ & ~key_write_channel));
    std::uint64_t value = 0;
    for (unsigned i = 0; i < size; ++i) {
        std::uint8_t byte = 0;
        if (it != items_.end() && offset_ < it->second.size()) {
            byte = it->second[offset_++];
        }
        value |= std::uint64_t{byte} << (8 * i);
    }
    return value;
}

void FwCfg::write(std::uint64_t offset, unsigned size, std::uint64_t value) {
    std::scoped_lock lock(mutex_);
    if (offset == 0 && size >= 2) {
        selector_ = static_cast<std::uint16_t>(value);
        offset_ = 0;
    }
    // Data-port writes: ignored (deprecated and removed from QEMU in 2.4).
}

} // namespace godwit::vmm
