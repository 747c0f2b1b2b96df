// A CSV node: asks the coordinator for metadata changes and block maps, then reads and
// writes file data on the shared LUN directly (the BlockDevice, O_DIRECT in production).
// A reader thread answers the coordinator's Revoke messages: it waits for this node's
// in-flight I/O on the file to finish, drops the map, and acknowledges.
//
// Coordinator changes (docs/csv-protocol.md): when the connection breaks (the coordinator
// died, moved, or stopped answering) the node is **Paused**: calls wait while a supervisor
// thread tries every listener in turn until one answers as coordinator, re-opens the node's
// open files there by identity, and lets the calls continue (a request that was in flight
// is sent again; see the retry rules in the protocol doc). When the LUN itself fails under
// this node it is **Redirected**: data I/O goes through the coordinator until a probe finds
// the path back, then it is **Direct** again.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "godwit/csv/block_device.hpp"
#include "godwit/csv/channel.hpp"

namespace godwit::csv {

struct NodeEntry {
    std::string name;
    std::uint64_t inode = 0;
    std::uint64_t size = 0;
    bool directory = false;
    std::uint64_t mtime_unix_ns = 0;    // last metadata change (direct data writes do not set it)
    std::uint64_t allocated_blocks = 0; // 4 KiB blocks owned
    std::uint32_t flags = 0;            // inode flags (snapshots: docs/csv-format.md §12)
};

enum class IoState { direct, redirected, paused };
std::string_view to_string(IoState state) noexcept;

struct NodeOptions {
    std::vector<Endpoint> listeners; // every node's listener: one of them coordinates
    TlsContext tls;                  // null: plaintext (only when asked for)
    std::uint64_t node_id = 1;
    std::string node_name;
    std::chrono::milliseconds map_lease{3000};
    // A call without an answer for this long counts as a lost coordinator.
    std::chrono::milliseconds call_timeout{30000};
    // How long the node stays Paused looking for a coordinator before calls fail.
    std::chrono::milliseconds pause_limit{60000};
    // How often a Redirected node probes its LUN path.
    std::chrono::milliseconds probe_interval{200};
};

class NodeClient {
  public:
    NodeClient(NodeOptions options, BlockDevice& lun); // One coordinator, no failover, plaintext
                                                       // (the older tests and the benchmark).
    NodeClient(const std::string& address, std::uint16_t port, BlockDevice& lun,
               std::uint64_t node_id, const std::string& node_name,
               std::chrono::milliseconds map_lease = std::chrono::seconds(3));
    ~NodeClient();
    NodeClient(const NodeClient&) = delete;
    NodeClient& operator=(const NodeClient&) = delete;

    void create(const std::string& path, std::uint64_t size);
    void make_directory(const std::string& path);
    void remove(const std::string& path);
    void rename(const std::string& from, const std::string& to);
    NodeEntry stat(const std::string& path);
    std::vector<NodeEntry> list(const std::string& directory);
    std::uint64_t open(const std::string& path); // returns a handle (stable across failover)
    void close(std::uint64_t handle);
    void resize(std::uint64_t handle, std::uint64_t size);
    std::uint64_t size(std::uint64_t handle);
    void write(std::uint64_t handle, std::uint64_t offset, std::span<const std::byte> data);
    std::size_t read(std::uint64_t handle, std::uint64_t offset, std::span<std::byte> out);
    // Makes every write this node completed durable (fdatasync of its LUN path; when
    // Redirected, or when the path fails now, the coordinator flushes the volume).
    void flush();

    // Snapshots of the volume (docs/csv-format.md §12): taken by the coordinator while it
    // holds every node's direct writes; readable at /.snapshots/NAME from every node.
    NodeEntry snapshot(const std::string& name);
    void release_snapshot(const std::string& name);
    std::vector<NodeEntry> snapshots();

    IoState state() const;
    std::uint64_t revocations_received() const;
    std::uint64_t maps_fetched() const;
    std::uint64_t reconnections() const;    // coordinator changes survived
    std::uint64_t redirected_bytes() const; // data moved through the coordinator
    std::uint64_t copies_requested() const; // copy-on-write requests (writes to shared blocks)
    std::chrono::milliseconds longest_pause() const;

    struct State;

  private:
    std::unique_ptr<State> state_;
};

} // namespace godwit::csv
