#include "memory/frame_bitmap.hpp"

namespace godwit::hv {

void FrameBitmap::init(u64* storage, u64 frame_count) {
    bits_ = storage;
    frame_count_ = frame_count;
    free_count_ = 0;
    bad_frees_ = 0;
    search_hint_ = 1;
    for (u64 i = 0; i < (frame_count + 63) / 64; ++i)
        bits_[i] = ~0ull;
}

bool FrameBitmap::is_used(u64 frame) const {
    return frame >= frame_count_ || (bits_[frame / 64] >> (frame % 64)) & 1;
}

void FrameBitmap::set(u64 frame, bool used) {
    if (frame >= frame_count_)
        return;
    u64 mask = 1ull << (frame % 64);
    bool was_used = bits_[frame / 64] & mask;
    if (used && !was_used) {
        bits_[frame / 64] |= mask;
        --free_count_;
    } else if (!used && was_used) {
        bits_[frame / 64] &= ~mask;
        ++free_count_;
    }
}

void FrameBitmap::release_range(u64 base, u64 length) {
    if (length == 0 || base + length < base)
        return;
    u64 first = align_up(base, page_size) / page_size;
    u64 end = align_down(base + length, page_size) / page_size;
    for (u64 f = first; f < end && f < frame_count_; ++f)
        set(f, false);
    set(0, true); // frame 0 stays reserved: 0 means "no frame"
}

void FrameBitmap::reserve_range(u64 base, u64 length) {
    if (length == 0)
        return;
    u64 first = base / page_size;
    u64 end = base + length < base ? frame_count_ : align_up(base + length, page_size) / page_size;
    for (u64 f = first; f < end && f < frame_count_; ++f)
        set(f, true);
}

u64 FrameBitmap::allocate(u64 count, u64 align) {
    if (count == 0 || count > free_count_ || align < page_size || (align & (align - 1)) != 0)
        return 0;
    u64 step = align / page_size;
    auto try_from = [&](u64 start_frame, u64 limit) -> u64 {
        u64 f = align_up(start_frame, step);
        while (f + count <= limit) {
            u64 run = 0;
            while (run < count && !is_used(f + run))
                ++run;
            if (run == count) {
                for (u64 i = 0; i < count; ++i)
                    set(f + i, true);
                if (count == 1)
                    search_hint_ = f + 1;
                return f * page_size;
            }
            f = align_up(f + run + 1, step);
        }
        return 0;
    };
    u64 hint = count == 1 ? search_hint_ : 1;
    u64 found = try_from(hint, frame_count_);
    if (found == 0 && hint > 1)
        found = try_from(1, frame_count_);
    return found;
}

void FrameBitmap::free(u64 address, u64 count) {
    u64 first = address / page_size;
    if (address % page_size != 0 || first == 0 || first + count > frame_count_) {
        ++bad_frees_;
        return;
    }
    for (u64 i = 0; i < count; ++i) {
        if (!is_used(first + i)) {
            ++bad_frees_;
            continue;
        }
        set(first + i, false);
    }
    if (first < search_hint_)
        search_hint_ = first;
}

} // namespace godwit::hv
