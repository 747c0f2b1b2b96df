// Bitmap of 4 KiB physical frames: bit set = used. Pure (the storage is the caller's), so
// the allocation logic is unit-tested on the host. Not thread-safe: the kernel wrapper
// (frame_allocator.cpp) serializes access.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

class FrameBitmap {
  public:
    // `storage` holds (frame_count + 63) / 64 words; all frames start used.
    void init(u64* storage, u64 frame_count);

    // Marks the frames wholly inside [base, base+length) free / partially touched ones used.
    void release_range(u64 base, u64 length);
    void reserve_range(u64 base, u64 length);

    // First run of `count` free frames whose address is aligned to `align` (power of two,
    // >= 4096), marked used; returns its address or 0 when none (frame 0 is never handed out).
    u64 allocate(u64 count, u64 align);
    // Frees a run previously allocated. Double frees and out-of-range frees are ignored and
    // counted (a hypervisor bug, visible in stats).
    void free(u64 address, u64 count);

    u64 frame_count() const { return frame_count_; }
    u64 free_count() const { return free_count_; }
    u64 bad_frees() const { return bad_frees_; }
    bool is_used(u64 frame) const;

  private:
    void set(u64 frame, bool used);
    u64* bits_ = nullptr;
    u64 frame_count_ = 0;
    u64 free_count_ = 0;
    u64 bad_frees_ = 0;
    u64 search_hint_ = 1;
};

} // namespace godwit::hv
