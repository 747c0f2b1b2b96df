#include "godwit/csv/allocator.hpp"

#include <algorithm>

#include "godwit/error.hpp"

namespace godwit::csv {

void ExtentAllocator::clear() {
    by_start_.clear();
    by_length_.clear();
    free_ = 0;
}

std::vector<Run> ExtentAllocator::free_runs() const {
    std::vector<Run> runs;
    for (const auto& [start, length] : by_start_) {
        runs.push_back({start, length});
    }
    return runs;
}

void ExtentAllocator::release(std::uint64_t start, std::uint64_t length) {
    if (length == 0) {
        return;
    }
    auto next = by_start_.lower_bound(start);
    if (next != by_start_.end() && next->first < start + length) {
        throw Error(ErrorCode::internal, "double free of block " + std::to_string(next->first));
    }
    if (next != by_start_.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second > start) {
            throw Error(ErrorCode::internal, "double free of block " + std::to_string(start));
        }
        if (prev->first + prev->second == start) {
            start = prev->first;
            length += prev->second;
            by_length_.erase({prev->second, prev->first});
            free_ -= prev->second;
            by_start_.erase(prev);
        }
    }
    if (next != by_start_.end() && next->first == start + length) {
        length += next->second;
        by_length_.erase({next->second, next->first});
        free_ -= next->second;
        by_start_.erase(next);
    }
    by_start_[start] = length;
    by_length_.insert({length, start});
    free_ += length;
}

void ExtentAllocator::take(std::uint64_t start, std::uint64_t length) {
    auto it = by_start_.upper_bound(start);
    if (it == by_start_.begin()) {
        throw Error(ErrorCode::internal, "allocator: taking a block that is not free");
    }
    --it;
    const std::uint64_t run_start = it->first;
    const std::uint64_t run_length = it->second;
    if (start + length > run_start + run_length) {
        throw Error(ErrorCode::internal, "allocator: taking a block that is not free");
    }
    by_length_.erase({run_length, run_start});
    by_start_.erase(it);
    free_ -= run_length;
    if (start > run_start) {
        by_start_[run_start] = start - run_start;
        by_length_.insert({start - run_start, run_start});
        free_ += start - run_start;
    }
    const std::uint64_t tail = run_start + run_length - (start + length);
    if (tail > 0) {
        by_start_[start + length] = tail;
        by_length_.insert({tail, start + length});
        free_ += tail;
    }
}

std::vector<Run> ExtentAllocator::allocate(std::uint64_t count, std::uint64_t goal) {
    if (count > free_) {
        throw Error(ErrorCode::failed, "volume full: " + std::to_string(count) +
                                           " blocks wanted, " + std::to_string(free_) + " free");
    }
    std::vector<Run> runs;
    std::uint64_t remaining = count;
    if (remaining > 0 && goal != 0) {
        auto it = by_start_.find(goal);
        if (it != by_start_.end()) {
            std::uint64_t n = std::min(remaining, it->second);
            take(goal, n);
            runs.push_back({goal, n});
            remaining -= n;
        }
    }
    while (remaining > 0) {
        auto fit = by_length_.lower_bound({remaining, 0});
        if (fit == by_length_.end()) {
            fit = std::prev(by_length_.end()); // largest run; more follow
        }
        std::uint64_t start = fit->second;
        std::uint64_t n = std::min(remaining, fit->first);
        take(start, n);
        if (!runs.empty() && runs.back().start + runs.back().length == start) {
            runs.back().length += n;
        } else {
            runs.push_back({start, n});
        }
        remaining -= n;
    }
    return runs;
}

} // namespace godwit::csv
