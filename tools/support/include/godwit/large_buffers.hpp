// Allocator tuning for processes that move data in megabyte-sized messages.
#pragma once

namespace godwit {

// Keeps freed large buffers in the process instead of handing them back to the kernel at
// once. The CSV redirected path and the migration stream allocate and free buffers of 1 MiB
// and more per message; glibc would mmap and munmap each one (or trim the heap under it),
// and every fresh page is a page fault: 256 per MiB, tens of microseconds each on a
// virtualized host. csv_bench measured redirected writes at 0.07 of direct without this and
// 0.5 with it. Costs at most the trim threshold (256 MiB) of retained free memory. Call once
// at the start of main, before threads start.
void keep_large_buffers() noexcept;

} // namespace godwit
