// Client side of the godwitd control socket, used by the godwit CLI.
#pragma once

#include <chrono>
#include <string>

#include "control.pb.h"

namespace godwit::control {

// Where godwitd listens unless told otherwise: $GODWIT_SOCKET, else this path.
inline constexpr const char* default_socket_path = "/run/godwit/godwitd.sock";
std::string socket_path_from_environment();

// Sends one request and returns the daemon's response. A Response carrying an Error is
// turned into a thrown godwit::Error with the daemon's code and message. Throws
// Error(not_found) when no daemon listens at `socket_path`, Error(timeout) when it does not
// answer within `timeout`, Error(protocol) on a malformed reply.
Response call(const std::string& socket_path, const Request& request,
              std::chrono::milliseconds timeout = std::chrono::seconds(30));

} // namespace godwit::control
