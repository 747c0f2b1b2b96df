// In-memory free-space index of the data area, rebuilt from the on-disk bitmap at mount.
// Prefers large contiguous runs: VHDs are big files and their extents should be few.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <utility>
#include <vector>

namespace godwit::csv {

struct Run {
    std::uint64_t start = 0;
    std::uint64_t length = 0;
    bool operator==(const Run&) const = default;
};

class ExtentAllocator {
  public:
    // Adds [start, start+length) as free (merging with neighbours). Throws
    // Error(internal) when part of it is already free (a double free).
    void release(std::uint64_t start, std::uint64_t length);
    // Takes `count` blocks: first continuing at `goal` (so a growing file stays
    // contiguous), then the smallest free run that holds the rest, else the largest runs.
    // Throws Error(failed, "volume full") without changing anything when there is not enough.
    std::vector<Run> allocate(std::uint64_t count, std::uint64_t goal);
    std::uint64_t free_blocks() const noexcept { return free_; }
    std::vector<Run> free_runs() const;
    void clear();

  private:
    void take(std::uint64_t start, std::uint64_t length);         // part of one free run
    std::map<std::uint64_t, std::uint64_t> by_start_;             // start -> length
    std::set<std::pair<std::uint64_t, std::uint64_t>> by_length_; // (length, start)
    std::uint64_t free_ = 0;
};

} // namespace godwit::csv
