#include "godwit/csv/framing.hpp"

#include <cstring>
#include <stdexcept>

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "godwit/error.hpp"

namespace godwit::csv {

namespace asio = boost::asio;

void send_frame(asio::ip::tcp::socket& socket, const google::protobuf::MessageLite& message) {
    std::string payload;
    if (!message.SerializeToString(&payload) || payload.size() > kMaxFrameBytes) {
        throw Error(ErrorCode::internal, "cannot encode a CSV protocol message");
    }
    const auto length = static_cast<std::uint32_t>(payload.size());
    std::string frame(4, '\0');
    std::memcpy(frame.data(), &length, 4);
    frame += payload;
    boost::system::error_code ec;
    asio::write(socket, asio::buffer(frame), ec);
    if (ec) {
        throw Error(ErrorCode::io, "CSV connection: send failed: " + ec.message());
    }
}

bool receive_frame(asio::ip::tcp::socket& socket, google::protobuf::MessageLite& message) {
    std::uint32_t length = 0;
    boost::system::error_code ec;
    asio::read(socket, asio::buffer(&length, 4), ec);
    if (ec == asio::error::eof) {
        return false;
    }
    if (ec) {
        throw Error(ErrorCode::io, "CSV connection: receive failed: " + ec.message());
    }
    if (length > kMaxFrameBytes) {
        throw Error(ErrorCode::protocol, "CSV connection: frame of " + std::to_string(length) +
                                             " bytes exceeds the limit");
    }
    std::string payload(length, '\0');
    asio::read(socket, asio::buffer(payload), ec);
    if (ec) {
        throw Error(ErrorCode::io, "CSV connection: receive failed: " + ec.message());
    }
    if (!message.ParseFromString(payload)) {
        throw Error(ErrorCode::protocol, "CSV connection: malformed message");
    }
    return true;
}

Endpoint parse_endpoint(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) {
        throw Error(ErrorCode::usage, "invalid endpoint '" + text + "' (want ADDRESS:PORT)");
    }
    Endpoint e;
    e.address = text.substr(0, colon);
    try {
        std::size_t used = 0;
        const unsigned long port = std::stoul(text.substr(colon + 1), &used);
        if (used != text.size() - colon - 1 || port == 0 || port > 65535) {
            throw std::out_of_range("port");
        }
        e.port = static_cast<std::uint16_t>(port);
    } catch (const std::exception&) {
        throw Error(ErrorCode::usage, "invalid port in '" + text + "'");
    }
    boost::system::error_code ec;
    asio::ip::make_address(e.address, ec);
    if (ec) {
        throw Error(ErrorCode::usage, "invalid address in '" + text + "'");
    }
    return e;
}

void request_once(const Endpoint& peer, const google::protobuf::MessageLite& request,
                  google::protobuf::MessageLite& reply, std::chrono::milliseconds timeout) {
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    boost::system::error_code ec;
    socket.connect({asio::ip::make_address(peer.address), peer.port}, ec);
    if (ec) {
        throw Error(ErrorCode::io, "cannot reach CSV node " + peer.text() + ": " + ec.message());
    }
    timeval tv{};
    tv.tv_sec = timeout.count() / 1000;
    tv.tv_usec = (timeout.count() % 1000) * 1000;
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    send_frame(socket, request);
    if (!receive_frame(socket, reply)) {
        throw Error(ErrorCode::io, "CSV node " + peer.text() + " closed the connection");
    }
}

} // namespace godwit::csv
