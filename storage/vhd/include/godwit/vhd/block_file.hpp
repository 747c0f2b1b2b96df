// The file a VHD lives in, behind a small interface so the shared-volume layer can later
// hand the VHD library its own backing store. PosixBlockFile is the plain-file one.
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

} // namespace godwit::vhd
