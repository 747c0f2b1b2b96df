// The file a VHD lives in, and the store of such files, behind small interfaces: plain files
// (the default), or a cluster shared volume's direct API (storage/csv: the VMM's disk I/O
// goes to the shared LUN without FUSE).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace godwit::vhd {

class BlockFile {
  public:
    virtual ~BlockFile() = default;
    // Whole transfers or a thrown godwit::Error (a short read past the end is invalid_input:
    // the file is truncated).
    virtual void read_at(void* buffer, std::size_t length, std::uint64_t offset) const = 0;
    virtual void write_at(const void* buffer, std::size_t length, std::uint64_t offset) = 0;
    virtual void sync() = 0; // data durable (fdatasync)
    virtual std::uint64_t size() const = 0;
    virtual void truncate(std::uint64_t size) = 0;
    // Frees the storage of a range (reads then return zeros); false when unsupported.
    virtual bool punch_hole(std::uint64_t offset, std::uint64_t length) = 0;
    virtual const std::string& path() const = 0;
};

enum class OpenMode { read_only, read_write, create_new };

std::unique_ptr<BlockFile> open_posix_file(const std::string& path, OpenMode mode);

// Where VHD files live. Differencing parents are found (and their locators written) through
// the store of the child.
class FileStore {
  public:
    virtual ~FileStore() = default;
    // Error(not_found) for a missing file, Error(conflict) when create_new finds one.
    virtual std::unique_ptr<BlockFile> open(const std::string& path, OpenMode mode) = 0;
    virtual bool exists(const std::string& path) = 0;
    // One spelling per file (a parent chain that loops back is refused by it).
    virtual std::string canonical(const std::string& path) = 0;
    virtual std::string absolute(const std::string& path) = 0;
    // `target` relative to the directory `base_dir` (a differencing disk's relative locator).
    virtual std::string relative(const std::string& target, const std::string& base_dir) = 0;
    virtual void remove(const std::string& path) noexcept = 0; // best effort
};

// The host's file system.
FileStore& posix_file_store();

} // namespace godwit::vhd
