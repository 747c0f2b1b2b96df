#include "godwit/csv/lease.hpp"

#include <algorithm>
#include <thread>

#include "godwit/csv/journal.hpp"
#include "godwit/error.hpp"

namespace godwit::csv {
namespace {

void write_lease(BlockDevice& device, std::uint64_t lease_block, LeaseBlock lease) {
    Block block{};
    store(block, lease);
    seal_block(block, BlockKind::lease, lease_block, 0);
    write_block(device, lease_block, block);
    device.flush();
}

std::string owner_text(const LeaseBlock& lease) {
    std::string name(lease.owner_name.data(),
                     strnlen(lease.owner_name.data(), lease.owner_name.size()));
    return "node " + std::to_string(lease.owner_node_id) + (name.empty() ? "" : " (" + name + ")");
}

} // namespace

Block initial_lease_block(std::uint64_t lease_block) {
    Block block{};
    LeaseBlock lease{};
    lease.state = static_cast<std::uint32_t>(LeaseState::free);
    store(block, lease);
    seal_block(block, BlockKind::lease, lease_block, 0);
    return block;
}

LeaseBlock read_lease(BlockDevice& device, std::uint64_t lease_block) {
    Block block = read_block(device, lease_block);
    validate_block(block, BlockKind::lease, lease_block);
    auto lease = load<LeaseBlock>(block);
    if (lease.state > static_cast<std::uint32_t>(LeaseState::held)) {
        throw Error(ErrorCode::invalid_input, "lease block: unknown state");
    }
    return lease;
}

std::uint64_t acquire_lease(BlockDevice& device, std::uint64_t lease_block, const LeaseIdentity& me,
                            const AcquireOptions& options) {
    if (me.node_id == 0) {
        throw Error(ErrorCode::usage, "node id 0 is reserved");
    }
    LeaseBlock lease = read_lease(device, lease_block);
    const bool held_by_other = lease.state == static_cast<std::uint32_t>(LeaseState::held) &&
                               lease.owner_node_id != me.node_id;
    if (held_by_other && !options.force) {
        // Delta lease: the holder is alive if its heartbeat counter moves within a duration.
        const std::uint64_t counter = lease.heartbeat_counter;
        const std::uint64_t generation = lease.generation;
        std::this_thread::sleep_for(std::chrono::milliseconds(
            std::max(options.lease_duration_ms, lease.lease_duration_ms)));
        lease = read_lease(device, lease_block);
        if (lease.heartbeat_counter != counter || lease.generation != generation) {
            throw Error(ErrorCode::conflict, "the volume is coordinated by " + owner_text(lease) +
                                                 ", whose lease is alive (generation " +
                                                 std::to_string(lease.generation) + ")");
        }
    }
    LeaseBlock mine{};
    mine.owner_node_id = me.node_id;
    mine.generation = lease.generation + 1;
    mine.heartbeat_counter = 0;
    mine.heartbeat_unix_ns = now_unix_ns();
    mine.lease_duration_ms = options.lease_duration_ms;
    mine.state = static_cast<std::uint32_t>(LeaseState::held);
    std::size_t n = std::min(me.node_name.size(), mine.owner_name.size() - 1);
    std::memcpy(mine.owner_name.data(), me.node_name.data(), n);
    write_lease(device, lease_block, mine);
    // Re-read: a racing taker that wrote after us wins, and we must notice.
    verify_lease(device, lease_block, me, mine.generation);
    if (options.settle_ms > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(options.settle_ms));
        verify_lease(device, lease_block, me, mine.generation);
    }
    return mine.generation;
}

void verify_lease(BlockDevice& device, std::uint64_t lease_block, const LeaseIdentity& me,
                  std::uint64_t generation) {
    LeaseBlock lease = read_lease(device, lease_block);
    if (lease.state != static_cast<std::uint32_t>(LeaseState::held) ||
        lease.owner_node_id != me.node_id || lease.generation != generation) {
        throw FencedError("lost the coordinator lease (now generation " +
                          std::to_string(lease.generation) + ", " +
                          (lease.state == static_cast<std::uint32_t>(LeaseState::held)
                               ? "held by " + owner_text(lease)
                               : std::string("free")) +
                          "): metadata writes are fenced");
    }
}

void heartbeat_lease(BlockDevice& device, std::uint64_t lease_block, const LeaseIdentity& me,
                     std::uint64_t generation) {
    verify_lease(device, lease_block, me, generation);
    LeaseBlock lease = read_lease(device, lease_block);
    lease.heartbeat_counter += 1;
    lease.heartbeat_unix_ns = now_unix_ns();
    write_lease(device, lease_block, lease);
}

std::uint64_t hand_over_lease(BlockDevice& device, std::uint64_t lease_block,
                              const LeaseIdentity& me, std::uint64_t generation,
                              const LeaseIdentity& target) {
    if (target.node_id == 0) {
        throw Error(ErrorCode::usage, "node id 0 is reserved");
    }
    verify_lease(device, lease_block, me, generation);
    LeaseBlock lease = read_lease(device, lease_block);
    lease.owner_node_id = target.node_id;
    lease.generation = generation + 1;
    lease.heartbeat_counter = 0;
    lease.heartbeat_unix_ns = now_unix_ns();
    lease.owner_name = {};
    std::size_t n = std::min(target.node_name.size(), lease.owner_name.size() - 1);
    std::memcpy(lease.owner_name.data(), target.node_name.data(), n);
    write_lease(device, lease_block, lease);
    return lease.generation;
}

void release_lease(BlockDevice& device, std::uint64_t lease_block, const LeaseIdentity& me,
                   std::uint64_t generation) {
    LeaseBlock lease = read_lease(device, lease_block);
    if (lease.owner_node_id != me.node_id || lease.generation != generation) {
        return;
    }
    lease.state = static_cast<std::uint32_t>(LeaseState::free);
    lease.owner_node_id = 0;
    write_lease(device, lease_block, lease);
}

} // namespace godwit::csv
