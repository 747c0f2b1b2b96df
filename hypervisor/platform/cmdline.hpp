// Hypervisor command line: space-separated words, each `flag` or `key=value`.
// Known keys: serial=PORT[,BAUD] (default 0x3f8,115200), loglevel=error|warn|info|debug,
// selftest. Pure; host-tested.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

// True when `word` appears as a whole word or as `word=...`.
bool cmdline_has_word(const char* cmdline, const char* word);

// Copies the value of `key=value` into out (NUL-terminated, truncated to out_size-1).
// Returns false when the key is absent.
bool cmdline_value(const char* cmdline, const char* key, char* out, usize out_size);

// Parses decimal or 0x-prefixed hexadecimal, stopping at `end` characters (',' or NUL).
// Returns false on no digits, a bad digit or overflow. *rest points past the number.
bool parse_u64(const char* s, u64& out, const char** rest = nullptr);

} // namespace godwit::hv
