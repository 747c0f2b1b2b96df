// Which data blocks more than one file references (snapshots share their files' blocks with
// the live files until one of them is written: copy-on-write). Not on disk: the coordinator
// rebuilds it at mount by counting every file's extents (docs/csv-format.md §12).
//
// Holds, for every block referenced more than once, how many references it has beyond the
// first ("extra"); a block absent from the index has at most one reference.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "godwit/csv/allocator.hpp"

namespace godwit::csv {

class SharedBlocks {
  public:
    // From every reference (extents of every file, snapshots included; runs may overlap).
    static SharedBlocks from_references(const std::vector<Run>& references);

    // One more reference to each block of the run (a snapshot's file now shares it).
    void add(std::uint64_t start, std::uint64_t length);
    // Drops one reference to each block of the run; returns the parts nobody else
    // references, which the caller frees.
    std::vector<Run> drop(std::uint64_t start, std::uint64_t length);
    // The parts of the run referenced more than once (a write there must copy first).
    std::vector<Run> shared(std::uint64_t start, std::uint64_t length) const;
    bool any_shared(std::uint64_t start, std::uint64_t length) const;
    // Extra references of one block (0 when it is referenced at most once).
    std::uint32_t extra(std::uint64_t block) const;
    bool empty() const noexcept { return pieces_.empty(); }
    std::uint64_t shared_blocks() const noexcept; // blocks referenced more than once
    void clear() noexcept { pieces_.clear(); }

  private:
    struct Piece {
        std::uint64_t end;   // exclusive
        std::uint32_t extra; // >= 1
    };
    // Splits the piece containing `at` (if any) so that a piece starts there.
    void split_at(std::uint64_t at);
    void merge_around(std::uint64_t start, std::uint64_t end);
    template <typename OnPiece, typename OnGap>
    void walk(std::uint64_t start, std::uint64_t end, OnPiece on_piece, OnGap on_gap);
    std::map<std::uint64_t, Piece> pieces_; // by start; disjoint
};

} // namespace godwit::csv
