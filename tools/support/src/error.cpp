#include "godwit/error.hpp"

#include <cerrno>
#include <cstring>

namespace godwit {

std::string_view to_string(ErrorCode code) noexcept {
    switch (code) {
    case ErrorCode::failed:
        return "failed";
    case ErrorCode::usage:
        return "usage";
    case ErrorCode::not_found:
        return "not_found";
    case ErrorCode::invalid_input:
        return "invalid_input";
    case ErrorCode::io:
        return "io";
    case ErrorCode::unsupported:
        return "unsupported";
    case ErrorCode::conflict:
        return "conflict";
    case ErrorCode::timeout:
        return "timeout";
    case ErrorCode::cancelled:
        return "cancelled";
    case ErrorCode::protocol:
        return "protocol";
    case ErrorCode::internal:
        return "internal";
    }
    return "unknown";
}

Error system_error(std::string_view what, int err) {
    std::string message{what};
    message += ": ";
    message += std::strerror(err);
    return Error(err == ENOENT ? ErrorCode::not_found : ErrorCode::io, std::move(message));
}

} // namespace godwit
