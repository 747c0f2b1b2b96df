#include "lib/format.hpp"

namespace godwit::hv {
namespace {

struct Sink {
    char* buffer;
    usize size;
    usize length = 0;
    void put(char c) {
        if (length + 1 < size) {
            buffer[length] = c;
        }
        ++length;
    }
};

void put_padded(Sink& out, const char* text, usize text_len, usize width, bool left, char pad,
                bool negative) {
    usize total = text_len + (negative ? 1 : 0);
    usize padding = width > total ? width - total : 0;
    if (!left && pad == ' ') {
        for (usize i = 0; i < padding; ++i)
            out.put(' ');
    }
    if (negative)
        out.put('-');
    if (!left && pad == '0') {
        for (usize i = 0; i < padding; ++i)
            out.put('0');
    }
    for (usize i = 0; i < text_len; ++i)
        out.put(text[i]);
    if (left) {
        for (usize i = 0; i < padding; ++i)
            out.put(' ');
    }
}

usize to_digits(u64 value, unsigned base, bool upper, char* digits) {
    const char* set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char reversed[24];
    usize n = 0;
    do {
        reversed[n++] = set[value % base];
        value /= base;
    } while (value != 0);
    for (usize i = 0; i < n; ++i)
        digits[i] = reversed[n - 1 - i];
    return n;
}

} // namespace

usize format_to(char* buffer, usize size, const char* fmt, va_list args) {
    Sink out{buffer, size};
    for (const char* p = fmt; *p != '\0'; ++p) {
        if (*p != '%') {
            out.put(*p);
            continue;
        }
        ++p;
        bool left = false;
        char pad = ' ';
        for (;; ++p) {
            if (*p == '-')
                left = true;
            else if (*p == '0')
                pad = '0';
            else
                break;
        }
        usize width = 0;
        while (*p >= '0' && *p <= '9')
            width = width * 10 + static_cast<usize>(*p++ - '0');
        int longs = 0;
        bool size_t_arg = false;
        while (*p == 'l') {
            ++longs;
            ++p;
        }
        if (*p == 'z') {
            size_t_arg = true;
            ++p;
        }
        if (left)
            pad = ' ';
        char digits[24];
        switch (*p) {
        case 'd':
        case 'i': {
            i64 v = longs >= 1 || size_t_arg ? va_arg(args, i64) : va_arg(args, int);
            bool negative = v < 0;
            u64 magnitude = negative ? 0 - static_cast<u64>(v) : static_cast<u64>(v);
            usize n = to_digits(magnitude, 10, false, digits);
            put_padded(out, digits, n, width, left, pad, negative);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            u64 v = longs >= 1 || size_t_arg ? va_arg(args, u64) : va_arg(args, unsigned);
            usize n = to_digits(v, *p == 'u' ? 10 : 16, *p == 'X', digits);
            put_padded(out, digits, n, width, left, pad, false);
            break;
        }
        case 'p': {
            u64 v = reinterpret_cast<u64>(va_arg(args, void*));
            out.put('0');
            out.put('x');
            usize n = to_digits(v, 16, false, digits);
            put_padded(out, digits, n, 16, false, '0', false);
            break;
        }
        case 's': {
            const char* s = va_arg(args, const char*);
            if (s == nullptr)
                s = "(null)";
            put_padded(out, s, str_length(s), width, left, ' ', false);
            break;
        }
        case 'c': {
            char c = static_cast<char>(va_arg(args, int));
            put_padded(out, &c, 1, width, left, ' ', false);
            break;
        }
        case '%':
            out.put('%');
            break;
        case '\0':
            --p; // format ends in a lone '%': stop
            break;
        default: // unknown conversion: print it verbatim so the bug is visible
            out.put('%');
            out.put(*p);
            break;
        }
    }
    if (size > 0) {
        buffer[out.length < size ? out.length : size - 1] = '\0';
    }
    return out.length;
}

usize format_to(char* buffer, usize size, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    usize n = format_to(buffer, size, fmt, args);
    va_end(args);
    return n;
}

bool str_equal(const char* a, const char* b) {
    while (*a != '\0' && *a == *b) {
        ++a;
        ++b;
    }
    return *a == *b;
}

usize str_length(const char* s) {
    usize n = 0;
    while (s[n] != '\0')
        ++n;
    return n;
}

} // namespace godwit::hv
