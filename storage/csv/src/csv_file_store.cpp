#include "godwit/csv/csv_file_store.hpp"

#include <filesystem>
#include <span>

#include "godwit/error.hpp"

namespace godwit::csv {
namespace {

class CsvBlockFile final : public vhd::BlockFile {
  public:
    CsvBlockFile(NodeClient& node, std::uint64_t handle, std::string path, bool writable)
        : node_(node), handle_(handle), path_(std::move(path)), writable_(writable) {}
    ~CsvBlockFile() override {
        try {
            node_.close(handle_);
        } catch (const Error&) {
            // The coordinator is gone or the node shut down: nothing left to release here.
        }
    }

    void read_at(void* buffer, std::size_t length, std::uint64_t offset) const override {
        std::size_t n =
            node_.read(handle_, offset, std::span(static_cast<std::byte*>(buffer), length));
        if (n != length) {
            throw Error(ErrorCode::invalid_input,
                        path_ + ": read of " + std::to_string(length) + " bytes at " +
                            std::to_string(offset) + " ends past the end of the file (" +
                            std::to_string(n) + " read): the file is truncated");
        }
    }
    void write_at(const void* buffer, std::size_t length, std::uint64_t offset) override {
        if (!writable_) {
            throw Error(ErrorCode::usage, path_ + ": opened read-only");
        }
        node_.write(handle_, offset, std::span(static_cast<const std::byte*>(buffer), length));
    }
    void sync() override { node_.flush(); }
    std::uint64_t size() const override { return node_.size(handle_); }
    void truncate(std::uint64_t size) override {
        if (!writable_) {
            throw Error(ErrorCode::usage, path_ + ": opened read-only");
        }
        node_.resize(handle_, size);
    }
    // The volume has no sparse files (docs/csv-format.md): discarded blocks stay allocated.
    bool punch_hole(std::uint64_t, std::uint64_t) override { return false; }
    const std::string& path() const override { return path_; }

  private:
    NodeClient& node_;
    std::uint64_t handle_;
    std::string path_;
    bool writable_;
};

} // namespace

std::string CsvFileStore::normalize(const std::string& path) {
    std::filesystem::path p = std::filesystem::path("/") / path;
    std::string s = p.lexically_normal().string();
    while (s.size() > 1 && s.back() == '/') {
        s.pop_back();
    }
    return s;
}

std::unique_ptr<vhd::BlockFile> CsvFileStore::open(const std::string& path, vhd::OpenMode mode) {
    const std::string p = normalize(path);
    if (mode == vhd::OpenMode::create_new) {
        node_.create(p, 0); // Error(conflict) when it exists: the coordinator decides
    }
    std::uint64_t handle = node_.open(p);
    return std::make_unique<CsvBlockFile>(node_, handle, p, mode != vhd::OpenMode::read_only);
}

bool CsvFileStore::exists(const std::string& path) {
    try {
        node_.stat(normalize(path));
        return true;
    } catch (const Error& e) {
        if (e.code() == ErrorCode::not_found) {
            return false;
        }
        throw;
    }
}

std::string CsvFileStore::relative(const std::string& target, const std::string& base_dir) {
    return std::filesystem::path(normalize(target))
        .lexically_relative(normalize(base_dir))
        .string();
}

void CsvFileStore::remove(const std::string& path) noexcept {
    try {
        node_.remove(normalize(path));
    } catch (const Error&) {
        // best effort: the caller is already handling a failure
    }
}

} // namespace godwit::csv
