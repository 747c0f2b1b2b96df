#include "dirty_log/dirty_bitmap.hpp"

namespace godwit::hv::dirty_log {

void DirtyBitmap::init(u64* storage, u64 base_gpa, u64 pages) {
    bits_ = storage;
    base_ = base_gpa;
    pages_ = pages;
    clear();
}

void DirtyBitmap::clear() {
    for (u64 i = 0; i < (pages_ + 63) / 64; ++i)
        bits_[i] = 0;
    out_of_range_ = 0;
}

void DirtyBitmap::mark(u64 gpa) {
    if (gpa < base_ || (gpa - base_) / page_size >= pages_) {
        ++out_of_range_;
        return;
    }
    u64 page = (gpa - base_) / page_size;
    bits_[page / 64] |= 1ull << (page % 64);
}

bool DirtyBitmap::test(u64 gpa) const {
    if (gpa < base_ || (gpa - base_) / page_size >= pages_)
        return false;
    u64 page = (gpa - base_) / page_size;
    return (bits_[page / 64] >> (page % 64)) & 1;
}

u64 DirtyBitmap::count() const {
    u64 n = 0;
    for (u64 i = 0; i < (pages_ + 63) / 64; ++i)
        n += static_cast<u64>(__builtin_popcountll(bits_[i]));
    return n;
}

u32 harvest_pml(const u64* buffer, u16 pml_index, DirtyBitmap& bitmap) {
    return for_each_pml_entry(buffer, pml_index, [&bitmap](u64 gpa) { bitmap.mark(gpa); });
}

} // namespace godwit::hv::dirty_log
