// A VHD disk (fixed, dynamic or differencing) open for block I/O. Thread-safe: reads run
// concurrently, writes and flushes are serialized.
//
// Crash consistency (docs/vhd.md): a new block is laid out as [new footer first, at the new
// end of file] then [sector bitmap][data]; BAT entries and differencing bitmaps are kept in
// memory and written by flush() only after the data is durable (fdatasync), then synced
// again. So after a crash every write that completed before the last flush() is there, and a
// BAT entry never points at data that was not written.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "godwit/vhd/block_file.hpp"
#include "godwit/vhd/vhd_format.hpp"

namespace godwit::vhd {

struct CreateOptions {
    DiskType type = DiskType::dynamic;
    std::uint64_t size = 0; // bytes; ignored for differencing (parent's size)
    std::uint32_t block_size = default_block_size;
    std::string parent; // differencing only
};

struct AllocationRun {
    std::uint64_t offset;
    std::uint64_t length;
    bool allocated; // in this file (not counting a parent)
};

class VhdImage {
  public:
    // Opens and validates; a hostile file gets Error(invalid_input) naming what is wrong.
    // Differencing disks open their parent chain read-only (loops and chains deeper than 32
    // are refused).
    // `store`: where the file and its parents live (plain files by default).
    static std::unique_ptr<VhdImage> open(const std::string& path, bool writable,
                                          FileStore& store = posix_file_store());
    static void create(const std::string& path, const CreateOptions& options,
                       FileStore& store = posix_file_store());

    std::uint64_t size() const { return footer_.current_size; }
    DiskType type() const { return footer_.type; }
    const Footer& footer() const { return footer_; }
    std::uint32_t block_size() const { return header_.block_size; }
    const std::string& path() const { return file_->path(); }
    const VhdImage* parent() const { return parent_.get(); }
    std::string parent_path() const { return parent_path_; }
    bool header_checksum_ok() const { return header_.checksum_ok; }
    bool footer_recovered_from_copy() const { return footer_from_copy_; }

    // Byte-granular I/O within [0, size()); Error(invalid_input) beyond it.
    void read(std::uint64_t offset, void* buffer, std::size_t length) const;
    void write(std::uint64_t offset, const void* buffer, std::size_t length);
    void flush();
    // Frees whole blocks of a dynamic disk inside the range (they read as zero again).
    // Differencing and fixed disks: no-op (the format cannot express it without data writes).
    void discard(std::uint64_t offset, std::uint64_t length);

    std::uint64_t allocated_bytes() const; // data blocks in this file (fixed: the size)
    std::vector<AllocationRun> allocation_map() const;
    bool sector_present(std::uint64_t sector) const; // in this file (differencing bitmap)

    // Copies this differencing disk's written sectors into its parent (opened writable).
    void commit_to_parent();

    // Structural problems of the file (empty = clean); never throws for a bad file.
    static std::vector<std::string> check(const std::string& path);

    ~VhdImage();

  private:
    VhdImage() = default;
    void load(FileStore& store, const std::string& path, bool writable, int depth,
              std::set<std::string>& seen);
    std::uint64_t bitmap_bytes() const;
    std::uint64_t block_offset(std::uint32_t block) const; // file offset of data, 0 = none
    std::vector<std::uint8_t>& bitmap_for(std::uint32_t block) const;
    void read_sectors(std::uint64_t sector, std::uint8_t* out, std::uint64_t count) const;
    void write_sectors(std::uint64_t sector, const std::uint8_t* in, std::uint64_t count);
    std::uint32_t allocate_block(std::uint32_t block);
    void flush_locked();

    std::unique_ptr<BlockFile> file_;
    bool writable_ = false;
    Footer footer_;
    DynamicHeader header_;
    bool footer_from_copy_ = false;
    std::vector<std::uint32_t> bat_;
    std::set<std::uint32_t> dirty_bat_;
    mutable std::map<std::uint32_t, std::vector<std::uint8_t>> bitmaps_; // differencing cache
    std::set<std::uint32_t> dirty_bitmaps_;
    std::uint64_t footer_offset_ = 0; // where the trailing footer is now
    std::unique_ptr<VhdImage> parent_;
    std::string parent_path_;
    mutable std::shared_mutex mutex_;
    mutable std::mutex bitmap_cache_mutex_;
};

// Opens `path` as raw bytes or as a VHD (by its footer) for format-independent reading.
class DiskReader {
  public:
    static std::unique_ptr<DiskReader> open(const std::string& path);
    virtual ~DiskReader() = default;
    virtual std::uint64_t size() const = 0;
    virtual void read(std::uint64_t offset, void* buffer, std::size_t length) const = 0;
    virtual std::string format() const = 0; // "raw", "vhd-fixed", ...
};

bool is_vhd_file(const std::string& path);

} // namespace godwit::vhd
