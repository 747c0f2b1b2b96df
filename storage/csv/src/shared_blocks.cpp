#include "godwit/csv/shared_blocks.hpp"

#include <algorithm>
#include <iterator>

namespace godwit::csv {

SharedBlocks SharedBlocks::from_references(const std::vector<Run>& references) {
    // Sweep over reference boundaries: the coverage count minus one is the extra count.
    std::map<std::uint64_t, std::int64_t> delta;
    for (const Run& r : references) {
        if (r.length == 0) {
            continue;
        }
        delta[r.start] += 1;
        delta[r.start + r.length] -= 1;
    }
    SharedBlocks out;
    std::int64_t depth = 0;
    for (auto it = delta.begin(); it != delta.end(); ++it) {
        depth += it->second;
        auto next = std::next(it);
        if (depth >= 2 && next != delta.end()) {
            out.pieces_[it->first] = {next->first, static_cast<std::uint32_t>(depth - 1)};
        }
    }
    out.merge_around(0, UINT64_MAX);
    return out;
}

void SharedBlocks::split_at(std::uint64_t at) {
    auto it = pieces_.upper_bound(at);
    if (it == pieces_.begin()) {
        return;
    }
    --it;
    if (it->first < at && at < it->second.end) {
        pieces_[at] = {it->second.end, it->second.extra};
        it->second.end = at;
    }
}

void SharedBlocks::merge_around(std::uint64_t start, std::uint64_t end) {
    auto it = pieces_.lower_bound(start);
    if (it != pieces_.begin()) {
        --it;
    }
    while (it != pieces_.end() && it->first <= end) {
        auto next = std::next(it);
        if (next != pieces_.end() && it->second.end == next->first &&
            it->second.extra == next->second.extra) {
            it->second.end = next->second.end;
            pieces_.erase(next);
            continue;
        }
        it = next;
    }
}

// Calls on_piece(iterator) for each piece inside [start, end) (after splitting the pieces
// at both ends; it returns the iterator after the piece, having possibly erased it) and
// on_gap(a, b) for each stretch of the range that no piece covers.
template <typename OnPiece, typename OnGap>
void SharedBlocks::walk(std::uint64_t start, std::uint64_t end, OnPiece on_piece, OnGap on_gap) {
    split_at(start);
    split_at(end);
    std::uint64_t pos = start;
    auto it = pieces_.lower_bound(start);
    while (pos < end) {
        if (it != pieces_.end() && it->first == pos) {
            pos = it->second.end;
            it = on_piece(it);
            continue;
        }
        const std::uint64_t gap_end = it != pieces_.end() ? std::min(end, it->first) : end;
        on_gap(pos, gap_end);
        pos = gap_end;
    }
    merge_around(start, end);
}

void SharedBlocks::add(std::uint64_t start, std::uint64_t length) {
    if (length == 0) {
        return;
    }
    walk(
        start, start + length,
        [](auto it) {
            it->second.extra += 1;
            return std::next(it);
        },
        // A gap: referenced once so far, twice from now on.
        [&](std::uint64_t a, std::uint64_t b) {
            pieces_[a] = {b, 1};
        });
}

std::vector<Run> SharedBlocks::drop(std::uint64_t start, std::uint64_t length) {
    std::vector<Run> unreferenced;
    if (length == 0) {
        return unreferenced;
    }
    walk(
        start, start + length,
        [&](auto it) { return --it->second.extra == 0 ? pieces_.erase(it) : std::next(it); },
        [&](std::uint64_t a, std::uint64_t b) {
            if (!unreferenced.empty() &&
                unreferenced.back().start + unreferenced.back().length == a) {
                unreferenced.back().length += b - a;
            } else {
                unreferenced.push_back({a, b - a});
            }
        });
    return unreferenced;
}

std::vector<Run> SharedBlocks::shared(std::uint64_t start, std::uint64_t length) const {
    std::vector<Run> out;
    const std::uint64_t end = start + length;
    auto it = pieces_.upper_bound(start);
    if (it != pieces_.begin()) {
        --it;
    }
    for (; it != pieces_.end() && it->first < end; ++it) {
        const std::uint64_t a = std::max(start, it->first);
        const std::uint64_t b = std::min(end, it->second.end);
        if (a >= b) {
            continue;
        }
        if (!out.empty() && out.back().start + out.back().length == a) {
            out.back().length += b - a;
        } else {
            out.push_back({a, b - a});
        }
    }
    return out;
}

bool SharedBlocks::any_shared(std::uint64_t start, std::uint64_t length) const {
    if (pieces_.empty() || length == 0) {
        return false;
    }
    auto it = pieces_.upper_bound(start);
    if (it != pieces_.begin() && std::prev(it)->second.end > start) {
        return true;
    }
    return it != pieces_.end() && it->first < start + length;
}

std::uint32_t SharedBlocks::extra(std::uint64_t block) const {
    auto it = pieces_.upper_bound(block);
    if (it == pieces_.begin()) {
        return 0;
    }
    --it;
    return block < it->second.end ? it->second.extra : 0;
}

std::uint64_t SharedBlocks::shared_blocks() const noexcept {
    std::uint64_t n = 0;
    for (const auto& [start, piece] : pieces_) {
        n += piece.end - start;
    }
    return n;
}

} // namespace godwit::csv
