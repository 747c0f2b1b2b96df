// The CSV namespace (docs/csv-namespace.md): a FUSE 3 file system that shows one cluster
// shared volume at the same path on every node (/ClusterStorage/<label>). Metadata calls go
// to the coordinator through the node's NodeClient; file data goes straight to the LUN
// through the node's block maps, exactly as NodeClient::read/write do. The VMM can skip
// FUSE for data by using the NodeClient itself (the direct API).
//
// Coherence between nodes: the kernel caches nothing (attribute, entry and negative
// timeouts 0, direct_io on every open file), so what one node writes another reads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "godwit/csv/block_device.hpp"
#include "godwit/csv/node_client.hpp"
#include "godwit/error.hpp"

namespace godwit::csv {

struct FuseMountOptions {
    std::string mountpoint;   // an existing, empty directory
    std::string volume_label; // shown as the file system's source ("csv:<label>")
    bool allow_other = false; // let users other than the mounting one in
    bool debug = false;       // libfuse's request trace on stderr
    unsigned max_threads = 8; // FUSE worker threads
};

// Capacity as the superblock on the LUN says (rewritten by every metadata transaction).
struct VolumeSpace {
    std::string label;
    std::uint64_t total_blocks = 0;
    std::uint64_t data_blocks = 0; // the data area
    std::uint64_t free_blocks = 0;
    std::uint64_t inode_count = 0;
    std::uint64_t free_inodes = 0;
};
// Reads the primary superblock (retrying a read torn by a concurrent commit); throws
// Error(invalid_input) when it stays invalid.
VolumeSpace read_volume_space(BlockDevice& lun);

// Throws Error(unsupported) naming the fix when /dev/fuse is missing or unusable.
void require_fuse_device();

// Throws Error(not_found) when `path` does not exist, Error(usage) when it is no directory,
// Error(conflict) when it is a dead FUSE mount (a killed node's) that must be unmounted first.
void require_mountpoint(const std::string& path);

// The errno a FUSE operation returns for a godwit::Error from the volume. `conflict_errno`
// says what ErrorCode::conflict means for the operation (EEXIST, ENOTEMPTY, EBUSY, ...).
int errno_for(const godwit::Error& error, int conflict_errno);

class FuseMount {
  public:
    // Mounts the volume served by `client` at options.mountpoint. `lun` is the node's data
    // path (fsync flushes it; statfs reads its superblock). Throws Error(not_found) when the
    // mountpoint is missing, Error(unsupported) when /dev/fuse is missing, Error(io) when the
    // kernel refuses the mount.
    FuseMount(NodeClient& client, BlockDevice& lun, FuseMountOptions options);
    ~FuseMount(); // unmounts (lazily when files are still busy) and closes leftover handles
    FuseMount(const FuseMount&) = delete;
    FuseMount& operator=(const FuseMount&) = delete;

    // Serves requests on this thread until the file system is unmounted (umount,
    // fusermount3 -u, or stop()). Returns 0 when it ended normally.
    int run();
    // Unmounts: run() returns once the kernel lets go. Callable from any thread, once.
    void stop();
    const std::string& mountpoint() const;

    struct State;

  private:
    std::unique_ptr<State> state_;
};

} // namespace godwit::csv
