// A fake physical memory for EPT tables in host tests: table pages live in a map keyed by
// made-up physical addresses, with an optional limit to test out-of-memory paths.
#pragma once

#include <map>
#include <memory>

#include "ept/ept_table.hpp"

namespace godwit::hv::ept {

class FakeTableMemory final : public TableMemory {
  public:
    u64 allocate_table() override {
        if (limit_ != 0 && pages_.size() >= limit_)
            return 0;
        u64 pa = next_;
        next_ += 0x1000;
        pages_[pa] = std::make_unique<u64[]>(512);
        return pa;
    }
    void free_table(u64 pa) override { pages_.erase(pa); }
    u64* table(u64 pa) override { return pages_.at(pa).get(); }
    usize live() const { return pages_.size(); }
    void set_limit(usize n) { limit_ = n; }

  private:
    std::map<u64, std::unique_ptr<u64[]>> pages_;
    u64 next_ = 0x7000000;
    usize limit_ = 0;
};

} // namespace godwit::hv::ept
