// Kernel frame allocator: a FrameBitmap over RAM below max_tracked_memory, fed from the
// Multiboot2 memory map, with the first MiB, the hypervisor image, the boot information and
// the boot modules reserved. Frames are zeroed on allocation.
#include "memory/frame_allocator.hpp"

#include "kernel/console.hpp"
#include "kernel/spinlock.hpp"
#include "memory/frame_bitmap.hpp"
#include "memory/memory_init.hpp"

extern "C" char __image_start[], __image_end[];
extern "C" void* memset(void*, int, godwit::hv::usize);

namespace godwit::hv {
namespace {

// The hypervisor tracks (and so can allocate from) RAM below 16 GiB; RAM above is left to
// the root partition. 16 GiB / 4 KiB frames = 4 Mi bits = 512 KiB of bitmap.
constexpr u64 max_tracked_memory = 16ull << 30;
constexpr u64 tracked_frames = max_tracked_memory / page_size;
u64 bitmap_storage[tracked_frames / 64];
FrameBitmap bitmap;
SpinLock lock;

} // namespace

void memory_init(const Multiboot2Info& info, u64 info_address) {
    bitmap.init(bitmap_storage, tracked_frames);
    u64 ram = 0;
    for (u32 i = 0; i < info.region_count; ++i) {
        const Mb2MemoryRegion& r = info.regions[i];
        if (r.type == 1) {
            bitmap.release_range(r.addr, r.length);
            ram += r.length;
        }
    }
    // Reserved even when the map says RAM: real-mode structures and our AP trampoline.
    bitmap.reserve_range(0, 1ull << 20);
    bitmap.reserve_range(reinterpret_cast<u64>(__image_start),
                         reinterpret_cast<u64>(__image_end) - reinterpret_cast<u64>(__image_start));
    bitmap.reserve_range(info_address, info.total_size);
    for (u32 i = 0; i < info.module_count; ++i) {
        bitmap.reserve_range(info.modules[i].start, info.modules[i].end - info.modules[i].start);
    }
    log(LogLevel::info, "memory: %lu MiB RAM in %u regions, %lu MiB free for the hypervisor",
        ram >> 20, info.region_count, (bitmap.free_count() * page_size) >> 20);
}

u64 memory_reserve_pool(const Multiboot2Info& info, u64 bytes, const MemoryRange* avoid,
                        u32 avoid_count) {
    // Candidates: the top of each RAM region below 4 GiB, then lower 2 MiB steps, highest
    // first; a candidate must consist of frames that are free now (not image, boot info,
    // first MiB) and miss every `avoid` range.
    u64 best = 0;
    for (u32 i = 0; i < info.region_count; ++i) {
        const Mb2MemoryRegion& r = info.regions[i];
        if (r.type != 1)
            continue;
        u64 end = r.addr + r.length < (4ull << 30) ? r.addr + r.length : (4ull << 30);
        for (u64 base = align_down(end, large_page_size);
             base >= r.addr + bytes && base - bytes > best; base -= large_page_size) {
            u64 start = base - bytes;
            bool clear = true;
            for (u32 a = 0; a < avoid_count && clear; ++a)
                clear = start >= avoid[a].base + avoid[a].size || base <= avoid[a].base;
            for (u64 f = start; f < base && clear; f += page_size)
                clear = !bitmap.is_used(f / page_size);
            if (clear) {
                best = start;
                break;
            }
        }
    }
    if (best == 0)
        return 0;
    SpinLockGuard guard(lock);
    bitmap.init(bitmap_storage, tracked_frames); // everything used ...
    bitmap.release_range(best, bytes);           // ... except the pool
    log(LogLevel::info, "memory: hypervisor pool %lu MiB at 0x%lx-0x%lx", bytes >> 20, best,
        best + bytes - 1);
    return best;
}

PhysAddr alloc_frames(usize count, u64 align) {
    u64 pa;
    {
        SpinLockGuard guard(lock);
        pa = bitmap.allocate(count, align);
    }
    if (pa != 0)
        memset(reinterpret_cast<void*>(pa), 0, count * page_size);
    return PhysAddr{pa};
}

PhysAddr alloc_frame() {
    return alloc_frames(1, page_size);
}

void free_frames(PhysAddr first, usize count) {
    SpinLockGuard guard(lock);
    bitmap.free(first.value, count);
}

void free_frame(PhysAddr frame) {
    free_frames(frame, 1);
}

FrameStats frame_stats() {
    SpinLockGuard guard(lock);
    return FrameStats{bitmap.frame_count(), bitmap.free_count()};
}

} // namespace godwit::hv
