// A mounted cluster shared volume, as its coordinator (the metadata owner) sees it.
//
// Every metadata change is one journal transaction (or, for large resizes, a series of
// transactions each of which leaves the volume consistent). Data I/O goes straight to the
// LUN and is not journaled. Non-coordinator nodes will get block maps from the
// coordinator (block_map) and do their data I/O themselves.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "godwit/csv/block_device.hpp"
#include "godwit/csv/format.hpp"
#include "godwit/csv/lease.hpp"

namespace godwit::csv {

struct FormatOptions {
    std::string label;
    std::uint64_t size_bytes = 0;     // 0 = the whole device
    std::uint64_t journal_blocks = 0; // 0 = automatic (at most kJournalMaxTargets + 2)
    std::uint64_t inode_count = 0;    // 0 = automatic (one per MiB, 64..65535)
};

// Writes a new, empty volume on `device` (destroying what was there).
Superblock format_volume(BlockDevice& device, const FormatOptions& options);

struct MountOptions {
    bool read_only = false; // no lease, no replay on disk (a pending transaction is overlaid)
    LeaseIdentity identity;
    AcquireOptions lease;
};

struct FileInfo {
    std::uint64_t inode = 0;
    std::uint64_t generation = 0;
    InodeType type = InodeType::free;
    std::uint64_t size = 0;
    std::uint64_t allocated_blocks = 0;
    std::uint32_t extent_count = 0;
    std::uint64_t mtime_unix_ns = 0;
    std::uint16_t flags = 0; // InodeFlags (snapshots)
    std::string name;
};

struct FileHandle {
    std::uint64_t id = 0;
    std::uint64_t inode = 0;
    std::uint64_t generation = 0;
};

// One contiguous piece of a file on the LUN.
struct MapSegment {
    std::uint64_t file_offset = 0;
    std::uint64_t device_offset = 0;
    std::uint64_t length = 0;
    // Another file (a snapshot) references these blocks: read-only; a writer asks for its
    // own copy first (Volume::unshare).
    bool shared = false;
};

struct BlockMap {
    std::uint64_t inode = 0;
    std::uint64_t generation = 0; // the node must present it back; reuse of the inode fails
    std::uint64_t size = 0;
    std::vector<MapSegment> segments;
};

class Volume {
  public:
    static std::unique_ptr<Volume> mount(BlockDevice& device, const MountOptions& options);
    ~Volume();
    Volume(const Volume&) = delete;
    Volume& operator=(const Volume&) = delete;

    // Releases the lease and rewrites the backup superblock. The destructor does this too
    // (best effort).
    void unmount();

    // Namespace. Paths are '/'-separated from the volume root ("/" is the root).
    FileInfo stat(std::string_view path);
    std::vector<FileInfo> list(std::string_view directory);
    FileInfo create_file(std::string_view path, std::uint64_t size = 0);
    FileInfo make_directory(std::string_view path);
    void remove(std::string_view path); // files must be closed, directories empty
    void rename(std::string_view from, std::string_view to);
    void resize(std::string_view path, std::uint64_t size);

    // Files.
    FileHandle open(std::string_view path);
    // Opens the file by identity (a node re-registering an open file with a new
    // coordinator). Error(not_found) when the inode is no longer that file.
    FileHandle open(std::uint64_t inode, std::uint64_t generation);
    void close(const FileHandle& handle);
    std::size_t read(const FileHandle& handle, std::uint64_t offset, std::span<std::byte> out);
    void write(const FileHandle& handle, std::uint64_t offset, std::span<const std::byte> in);
    void resize(const FileHandle& handle, std::uint64_t size);
    // Makes data written so far durable (data I/O is not journaled: like fsync).
    void flush();
    BlockMap block_map(const FileHandle& handle, std::uint64_t offset, std::uint64_t length);
    // Whether part of the range lies on blocks a snapshot shares (a write there copies).
    bool is_shared(const FileHandle& handle, std::uint64_t offset, std::uint64_t length);
    // Copy-on-write before a node writes [offset, offset+length) directly: the file gets its
    // own blocks wherever it shares them with a snapshot (whole 1 MiB granules). The caller
    // took every other node's map of the file back first. Error(conflict) on a snapshot file.
    void unshare(const FileHandle& handle, std::uint64_t offset, std::uint64_t length);

    // Snapshots (docs/csv-format.md §12): a read-only, point-in-time copy of the whole
    // namespace at /.snapshots/NAME whose files share their data blocks with the live files
    // until either is written. The caller (the coordinator) stops data writes first: it takes
    // every block map back and hands out none until this returns.
    FileInfo create_snapshot(std::string_view name);
    // Frees the snapshot's tree and every block no other file references. Error(conflict)
    // while one of its files is open.
    void release_snapshot(std::string_view name);
    std::vector<FileInfo> snapshots();   // /.snapshots, by name
    std::uint64_t shared_blocks() const; // data blocks referenced by more than one file

    Superblock superblock() const;
    std::uint64_t free_blocks() const;
    std::uint64_t free_inodes() const;
    std::uint64_t last_txn_seq() const;
    // Seq of the transaction replayed at mount (0 when the journal held none).
    std::uint64_t replayed_seq() const;
    std::uint64_t lease_generation() const;
    std::uint32_t lease_duration_ms() const;
    // Bumps the lease heartbeat; the holder must do so well within the lease duration, or
    // another node may take the volume over. Throws Error(conflict) once fenced.
    void heartbeat();
    // Planned coordinator move: writes the backup superblock, then hands the lease to
    // `target` (docs/csv-format.md §4). Afterwards this Volume is unmounted and fenced.
    // Returns the generation the lease names `target` at.
    std::uint64_t hand_over(const LeaseIdentity& target);

    struct State;

  private:
    explicit Volume(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

} // namespace godwit::csv
