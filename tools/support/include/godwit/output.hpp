// The --json convention: a command that returns data prints exactly one JSON document on
// stdout (an object) and nothing else there; human text goes to stdout only without --json.
// A failing command with --json prints {"error":{"code":"<name>","exit_code":N,"message":"..."}}
// on stdout and exits with exit_code. Logs always go to stderr.
#pragma once

#include <iosfwd>

#include <nlohmann/json.hpp>

#include "godwit/error.hpp"

namespace godwit {

using Json = nlohmann::ordered_json;

Json error_to_json(const Error& error);

// Pretty-prints one JSON document followed by a newline.
void print_json(std::ostream& out, const Json& document);

// Formats a byte count for humans: "512 B", "1.5 KiB", "2.0 GiB".
std::string format_bytes(unsigned long long bytes);

} // namespace godwit
