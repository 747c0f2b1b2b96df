// The one error convention of Godwit's host side.
//
// Library code reports failure by throwing godwit::Error (an ErrorCode plus a message a
// human can act on). Programs catch it once, at the top, log it, print it (as JSON with
// --json) and exit with exit_code_for(code). Expected, frequent outcomes that are not
// failures (a disk check that finds problems, a cancelled migration) are return values.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace godwit {

// Stable numbers: they are the process exit codes and appear in --json output.
enum class ErrorCode : int {
    failed = 1,        // the operation ran and did not succeed
    usage = 2,         // bad command line
    not_found = 3,     // file, VM, host, volume does not exist
    invalid_input = 4, // malformed or hostile data (VHD, stream, definition)
    io = 5,            // the OS refused a read/write/open
    unsupported = 6,   // valid but not supported (feature, format version, CPU)
    conflict = 7,      // already exists, busy, locked, wrong state
    timeout = 8,       // peer or device did not answer in time
    cancelled = 9,     // stopped on request
    protocol = 10,     // a peer broke the protocol
    internal = 70,     // a bug in Godwit (EX_SOFTWARE)
};

std::string_view to_string(ErrorCode code) noexcept;

// Exit code a program returns for an error of this code.
constexpr int exit_code_for(ErrorCode code) noexcept {
    return static_cast<int>(code);
}

class Error : public std::runtime_error {
  public:
    Error(ErrorCode code, std::string message)
        : std::runtime_error(std::move(message)), code_(code) {}
    ErrorCode code() const noexcept { return code_; }

  private:
    ErrorCode code_;
};

// Error from errno: "<what>: <strerror(errno)>", code io (or not_found for ENOENT).
[[nodiscard]] Error system_error(std::string_view what, int err);

} // namespace godwit
