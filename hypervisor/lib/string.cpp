// The C memory/string functions the compiler may call even in freestanding code (struct
// copies, zero-initialization). Word-wide loops: byte loops are slow under emulation.
// Built with -fno-tree-loop-distribute-patterns so GCC cannot turn these loops back into
// calls to themselves.
#include "lib/types.hpp"

using godwit::hv::u64;
using godwit::hv::u8;
using godwit::hv::usize;

extern "C" {

void* memcpy(void* dst, const void* src, usize n) {
    auto* d = static_cast<u8*>(dst);
    const auto* s = static_cast<const u8*>(src);
    if (((reinterpret_cast<u64>(d) | reinterpret_cast<u64>(s)) & 7) == 0) {
        for (; n >= 8; n -= 8, d += 8, s += 8) {
            *reinterpret_cast<u64*>(d) = *reinterpret_cast<const u64*>(s);
        }
    }
    for (; n > 0; --n) {
        *d++ = *s++;
    }
    return dst;
}

void* memmove(void* dst, const void* src, usize n) {
    auto* d = static_cast<u8*>(dst);
    const auto* s = static_cast<const u8*>(src);
    if (d <= s || d >= s + n) {
        return memcpy(dst, src, n);
    }
    // Overlapping with dst above src: copy backwards, a word at a time when src and dst
    // share their alignment (moving a multi-MiB kernel byte by byte is slow when emulated).
    if (((reinterpret_cast<u64>(d) - reinterpret_cast<u64>(s)) & 7) == 0) {
        while (n > 0 && (reinterpret_cast<u64>(d + n) & 7) != 0) {
            --n;
            d[n] = s[n];
        }
        for (; n >= 8; n -= 8)
            *reinterpret_cast<u64*>(d + n - 8) = *reinterpret_cast<const u64*>(s + n - 8);
    }
    while (n > 0) {
        --n;
        d[n] = s[n];
    }
    return dst;
}

void* memset(void* dst, int value, usize n) {
    auto* d = static_cast<u8*>(dst);
    u8 b = static_cast<u8>(value);
    if ((reinterpret_cast<u64>(d) & 7) == 0) {
        u64 word = 0x0101010101010101ull * b;
        for (; n >= 8; n -= 8, d += 8) {
            *reinterpret_cast<u64*>(d) = word;
        }
    }
    for (; n > 0; --n) {
        *d++ = b;
    }
    return dst;
}

int memcmp(const void* a, const void* b, usize n) {
    const auto* x = static_cast<const u8*>(a);
    const auto* y = static_cast<const u8*>(b);
    for (usize i = 0; i < n; ++i) {
        if (x[i] != y[i]) {
            return x[i] < y[i] ? -1 : 1;
        }
    }
    return 0;
}

usize strlen(const char* s) {
    usize n = 0;
    while (s[n] != '\0') {
        ++n;
    }
    return n;
}

// Pure virtual call / guard hooks the ABI may reference; none should ever run.
void __cxa_pure_virtual() {
    for (;;) {
        asm volatile("cli; hlt");
    }
}

} // extern "C"
