// A CSV node: asks the coordinator for metadata changes and block maps, then reads and
// writes file data on the shared LUN directly (the BlockDevice, O_DIRECT in production).
// A reader thread answers the coordinator's Revoke messages: it waits for this node's
// in-flight I/O on the file to finish, drops the map, and acknowledges.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "godwit/csv/block_device.hpp"

namespace godwit::csv {

struct NodeEntry {
    std::string name;
    std::uint64_t inode = 0;
    std::uint64_t size = 0;
    bool directory = false;
};

class NodeClient {
  public:
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
    std::uint64_t open(const std::string& path); // returns a handle
    void close(std::uint64_t handle);
    void resize(std::uint64_t handle, std::uint64_t size);
    std::uint64_t size(std::uint64_t handle);
    void write(std::uint64_t handle, std::uint64_t offset, std::span<const std::byte> data);
    std::size_t read(std::uint64_t handle, std::uint64_t offset, std::span<std::byte> out);

    std::uint64_t revocations_received() const;
    std::uint64_t maps_fetched() const;

    struct State;

  private:
    std::unique_ptr<State> state_;
};

} // namespace godwit::csv
