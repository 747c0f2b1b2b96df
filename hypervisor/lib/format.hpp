// printf-style formatting into a caller's buffer. Pure (no I/O), so it builds on the host and
// is unit-tested there. Conversions: %d %i %u %x %X %p %s %c %% with the length modifiers
// l, ll, z, field width, '0' padding and '-' left justification.
#pragma once

#include <cstdarg>

#include "lib/types.hpp"

namespace godwit::hv {

// Writes at most size-1 characters and a NUL (when size > 0); returns the length the
// complete output would have had (like vsnprintf).
usize format_to(char* buffer, usize size, const char* fmt, va_list args);
usize format_to(char* buffer, usize size, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Small string helpers used by parsers (pure).
bool str_equal(const char* a, const char* b);
usize str_length(const char* s);

} // namespace godwit::hv
