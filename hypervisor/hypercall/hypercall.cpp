#include "hypercall/hypercall.hpp"

namespace godwit::hv::hypercall {
namespace {

constexpr Result status(u64 s, u64 value = 0) {
    return Result{s, value};
}

// A struct-sized output: the buffer must hold the struct, sit in caller memory and the
// unused argument must be zero (reserved, so it can get a meaning later).
template <typename T>
Result struct_out(const Call& c, HypercallHost& host, const T& value) {
    if (c.arg2 != 0)
        return status(GODWIT_HC_BAD_ARGUMENT);
    if (c.arg1 < sizeof(T) || c.arg1 > struct_buffer_max)
        return status(GODWIT_HC_BAD_LENGTH);
    if (!host.caller_owns(c.arg0, c.arg1))
        return status(GODWIT_HC_BAD_ADDRESS);
    host.copy_to_caller(c.arg0, &value, sizeof(T));
    return status(GODWIT_HC_OK);
}

Result cpu_list(const Call& c, HypercallHost& host) {
    if (c.arg2 != 0)
        return status(GODWIT_HC_BAD_ARGUMENT);
    if (c.arg1 < sizeof(godwit_hc_cpu) || c.arg1 > cpu_list_max)
        return status(GODWIT_HC_BAD_LENGTH);
    if (!host.caller_owns(c.arg0, c.arg1))
        return status(GODWIT_HC_BAD_ADDRESS);
    u32 count = host.cpu_count();
    u64 fits = c.arg1 / sizeof(godwit_hc_cpu);
    for (u32 i = 0; i < count && i < fits; ++i) {
        godwit_hc_cpu entry{};
        host.cpu(i, entry);
        host.copy_to_caller(c.arg0 + i * sizeof(godwit_hc_cpu), &entry, sizeof(entry));
    }
    return status(GODWIT_HC_OK, count);
}

Result console_read(const Call& c, HypercallHost& host) {
    constexpr u64 header = sizeof(godwit_hc_console_chunk);
    if (c.arg1 < header || c.arg1 > header + GODWIT_HC_CONSOLE_READ_MAX)
        return status(GODWIT_HC_BAD_LENGTH);
    if (!host.caller_owns(c.arg0, c.arg1))
        return status(GODWIT_HC_BAD_ADDRESS);
    const char* ring = nullptr;
    u64 size = 0, written = 0;
    host.console(ring, size, written);
    u64 oldest = written > size ? written - size : 0;
    u64 position = c.arg2;
    if (position > written)
        return status(GODWIT_HC_BAD_ARGUMENT); // a position from the future
    if (position < oldest)
        position = oldest; // overwritten already: start at the oldest byte held
    u64 length = written - position;
    if (length > c.arg1 - header)
        length = c.arg1 - header;
    godwit_hc_console_chunk chunk{position, written};
    host.copy_to_caller(c.arg0, &chunk, header);
    // The text may wrap around the end of the ring: at most two pieces.
    u64 copied = 0;
    while (copied < length) {
        u64 offset = (position + copied) % size;
        u64 piece = size - offset;
        if (piece > length - copied)
            piece = length - copied;
        host.copy_to_caller(c.arg0 + header + copied, ring + offset, piece);
        copied += piece;
    }
    return status(GODWIT_HC_OK, length);
}

} // namespace

Result dispatch(const Call& c, HypercallHost& host) {
    if (!c.from_root || c.cpl != 0)
        return status(GODWIT_HC_DENIED);
    switch (c.number) {
    case GODWIT_HC_VERSION: {
        godwit_hc_version v{};
        host.version(v);
        return struct_out(c, host, v);
    }
    case GODWIT_HC_CPU_LIST:
        return cpu_list(c, host);
    case GODWIT_HC_MEMORY_STATS: {
        godwit_hc_memory_stats m{};
        host.memory_stats(m);
        return struct_out(c, host, m);
    }
    case GODWIT_HC_CONSOLE_READ:
        return console_read(c, host);
    default:
        return status(GODWIT_HC_UNKNOWN_CALL);
    }
}

} // namespace godwit::hv::hypercall
