#include "godwit/large_buffers.hpp"

#include <malloc.h>

namespace godwit {

void keep_large_buffers() noexcept {
    // Below 32 MiB (glibc's largest dynamic threshold) allocations come from the heap, and
    // the heap is trimmed only when 256 MiB at its top are free.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

} // namespace godwit
