#include "platform/cmdline.hpp"

namespace godwit::hv {
namespace {

// Finds `key` at a word start, followed by end, space or '='. Returns the char after it.
const char* find_word(const char* cmdline, const char* key) {
    if (cmdline == nullptr || key == nullptr || *key == '\0')
        return nullptr;
    const char* p = cmdline;
    while (*p != '\0') {
        while (*p == ' ')
            ++p;
        const char* start = p;
        const char* k = key;
        while (*k != '\0' && *p == *k) {
            ++p;
            ++k;
        }
        if (*k == '\0' && (*p == '\0' || *p == ' ' || *p == '='))
            return p;
        p = start;
        while (*p != '\0' && *p != ' ')
            ++p;
    }
    return nullptr;
}

} // namespace

bool cmdline_has_word(const char* cmdline, const char* word) {
    return find_word(cmdline, word) != nullptr;
}

bool cmdline_value(const char* cmdline, const char* key, char* out, usize out_size) {
    const char* p = find_word(cmdline, key);
    if (p == nullptr || *p != '=' || out_size == 0)
        return false;
    ++p;
    usize n = 0;
    while (*p != '\0' && *p != ' ') {
        if (n + 1 < out_size)
            out[n++] = *p;
        ++p;
    }
    out[n] = '\0';
    return true;
}

bool parse_u64(const char* s, u64& out, const char** rest) {
    u64 base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    u64 value = 0;
    usize digits = 0;
    for (;; ++s, ++digits) {
        u64 d;
        if (*s >= '0' && *s <= '9')
            d = static_cast<u64>(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = static_cast<u64>(*s - 'a' + 10);
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            d = static_cast<u64>(*s - 'A' + 10);
        else
            break;
        if (value > (~0ull - d) / base)
            return false; // overflow
        value = value * base + d;
    }
    if (digits == 0 || (*s != '\0' && *s != ',' && *s != ' '))
        return false;
    out = value;
    if (rest != nullptr)
        *rest = s;
    return true;
}

} // namespace godwit::hv
