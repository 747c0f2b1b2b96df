#include "godwit/control_client.hpp"

#include <sys/socket.h>
#include <sys/time.h>

#include <cstdlib>

#include <boost/asio.hpp>

#include "godwit/control_framing.hpp"
#include "godwit/error.hpp"

namespace godwit::control {

namespace asio = boost::asio;
using local_stream = asio::local::stream_protocol;

std::string socket_path_from_environment() {
    const char* env = std::getenv("GODWIT_SOCKET");
    return env && *env ? env : default_socket_path;
}

Response call(const std::string& socket_path, const Request& request,
              std::chrono::milliseconds timeout) {
    asio::io_context io;
    local_stream::socket socket(io);
    boost::system::error_code ec;
    socket.connect(local_stream::endpoint(socket_path), ec);
    if (ec) {
        throw Error(ec == asio::error::connection_refused || ec == asio::error::not_found ||
                            ec.value() == ENOENT
                        ? ErrorCode::not_found
                        : ErrorCode::io,
                    "cannot reach godwitd at " + socket_path + ": " + ec.message() +
                        " (is godwitd running? --socket or $GODWIT_SOCKET choose another)");
    }
    // Blocking I/O with a kernel-enforced timeout: simple and enough for one request.
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    std::string payload;
    if (!request.SerializeToString(&payload)) {
        throw Error(ErrorCode::internal, "cannot serialize control request");
    }
    asio::write(socket, asio::buffer(encode_frame(payload)), ec);
    if (ec) {
        throw Error(ErrorCode::io, "sending to godwitd failed: " + ec.message());
    }
    unsigned char header[4];
    asio::read(socket, asio::buffer(header), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again ||
        ec == asio::error::timed_out) {
        throw Error(ErrorCode::timeout,
                    "godwitd did not answer within " + std::to_string(timeout.count()) + " ms");
    }
    if (ec) {
        throw Error(ErrorCode::protocol, "godwitd closed the connection: " + ec.message());
    }
    std::string body(decode_frame_length(header), '\0');
    asio::read(socket, asio::buffer(body), ec);
    if (ec) {
        throw Error(ErrorCode::protocol, "truncated reply from godwitd: " + ec.message());
    }
    Response response;
    if (!response.ParseFromString(body)) {
        throw Error(ErrorCode::protocol, "malformed reply from godwitd");
    }
    if (response.has_error()) {
        int code = response.error().code();
        auto known = code >= 1 && code <= 10 ? static_cast<ErrorCode>(code) : ErrorCode::failed;
        if (code == static_cast<int>(ErrorCode::internal)) {
            known = ErrorCode::internal;
        }
        throw Error(known, response.error().message());
    }
    return response;
}

} // namespace godwit::control
