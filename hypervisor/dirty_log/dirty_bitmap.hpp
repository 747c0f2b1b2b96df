// Dirty-page bitmaps and Page-Modification-Log harvesting (Intel SDM Vol. 3C, 29.3.6).
// Pure; unit-tested on the host.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv::dirty_log {

// One bit per 4 KiB guest page in [base_gpa, base_gpa + pages * 4 KiB).
class DirtyBitmap {
  public:
    void init(u64* storage, u64 base_gpa, u64 pages);
    // Marks the page holding gpa; addresses outside the range are counted and ignored.
    void mark(u64 gpa);
    bool test(u64 gpa) const;
    u64 count() const;
    void clear();
    u64 out_of_range() const { return out_of_range_; }
    u64 pages() const { return pages_; }
    u64 base() const { return base_; }

  private:
    u64* bits_ = nullptr;
    u64 base_ = 0;
    u64 pages_ = 0;
    u64 out_of_range_ = 0;
};

inline constexpr u32 pml_entries = 512;

// Moves the logged guest-physical addresses of a PML buffer into `bitmap` and returns how
// many entries there were. The CPU writes entry `index` then decrements the index, starting
// at 511; so entries index+1..511 are valid, all 512 when the index wrapped (>= 512). Bochs
// 2.7 logs addresses that are not 4 KiB aligned: the low 12 bits are masked.
u32 harvest_pml(const u64* buffer, u16 pml_index, DirtyBitmap& bitmap);

// The same walk for any sink: calls mark(gpa) (4 KiB aligned) for every logged entry.
template <class Mark>
u32 for_each_pml_entry(const u64* buffer, u16 pml_index, Mark&& mark) {
    u32 first = pml_index >= pml_entries ? 0 : u32{pml_index} + 1;
    for (u32 i = first; i < pml_entries; ++i)
        mark(buffer[i] & ~(page_size - 1));
    return pml_entries - first;
}

} // namespace godwit::hv::dirty_log
