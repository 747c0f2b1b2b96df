// The on-disk coordinator-ownership lease (docs/csv-format.md §4).
//
// Only the node holding the lease may write metadata. The holder bumps the heartbeat
// counter periodically; a taker waits one lease duration and takes over only if the
// counter did not move (a delta lease, as sanlock does), with generation+1. The holder
// re-reads the lease before every journal commit and stops writing metadata the moment
// the generation or owner changed: that is the fence that keeps a partitioned coordinator
// from corrupting the volume.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "godwit/csv/block_device.hpp"
#include "godwit/csv/format.hpp"
#include "godwit/error.hpp"

namespace godwit::csv {

// verify_lease's refusal: the lease moved on (to another owner or generation), so this node
// must not write metadata any more.
class FencedError : public Error {
  public:
    explicit FencedError(std::string message) : Error(ErrorCode::conflict, std::move(message)) {}
};

struct LeaseIdentity {
    std::uint64_t node_id = 1; // non-zero, unique in the cluster
    std::string node_name;
};

LeaseBlock read_lease(BlockDevice& device, std::uint64_t lease_block);

struct AcquireOptions {
    std::uint32_t lease_duration_ms = 10000;
    bool force = false; // take over without waiting (the operator has fenced the old owner)
    // After writing the lease, wait this long and re-read it again (a taker racing within
    // the window then wins alone): failover takers use it, a plain mount does not.
    std::uint32_t settle_ms = 0;
};

// Takes the lease; returns the new generation. Throws Error(conflict) when another node
// holds it and its heartbeat moved during the wait.
std::uint64_t acquire_lease(BlockDevice& device, std::uint64_t lease_block, const LeaseIdentity& me,
                            const AcquireOptions& options);

// Throws Error(conflict) unless `me` still holds the lease at `generation`.
void verify_lease(BlockDevice& device, std::uint64_t lease_block, const LeaseIdentity& me,
                  std::uint64_t generation);

// Bumps the heartbeat (after verifying ownership).
void heartbeat_lease(BlockDevice& device, std::uint64_t lease_block, const LeaseIdentity& me,
                     std::uint64_t generation);

// Planned coordinator move: writes the lease as held by `target` at generation+1 with a
// fresh heartbeat (after verifying it is still ours) and returns that generation. From
// then on `me` is fenced; `target` takes it at once (acquire_lease finds itself the owner).
std::uint64_t hand_over_lease(BlockDevice& device, std::uint64_t lease_block,
                              const LeaseIdentity& me, std::uint64_t generation,
                              const LeaseIdentity& target);

// Marks the lease free (if still ours).
void release_lease(BlockDevice& device, std::uint64_t lease_block, const LeaseIdentity& me,
                   std::uint64_t generation);

// The lease block written at format time: free, generation 0.
Block initial_lease_block(std::uint64_t lease_block);

} // namespace godwit::csv
