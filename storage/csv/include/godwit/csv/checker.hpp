// The volume checker (`godwit csv check`): reads a volume without changing it (a pending
// journal transaction is overlaid, as a mount would replay it) and lists every problem:
// checksums, layout, every allocated block owned exactly once, no extent outside the
// data area, bitmap agreeing with ownership, a consistent directory tree, right free counts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "godwit/csv/block_device.hpp"

namespace godwit::csv {

struct CheckReport {
    std::vector<std::string> problems; // empty: the volume is clean
    std::uint64_t total_blocks = 0;
    std::uint64_t free_blocks = 0;
    std::uint64_t files = 0;
    std::uint64_t directories = 0;
    std::uint64_t pending_txn_seq = 0; // a committed transaction not yet written home
    bool clean() const noexcept { return problems.empty(); }
};

// Never throws for bad on-disk data (that is a problem in the report); throws only when
// the device itself cannot be read.
CheckReport check_volume(BlockDevice& device);

} // namespace godwit::csv
