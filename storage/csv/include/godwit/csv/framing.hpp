// Message framing on a coordinator/node TCP connection: 4-byte little-endian length, then
// the serialized protobuf message (storage/csv/proto/csv_protocol.proto).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <google/protobuf/message_lite.h>

namespace godwit::csv {

inline constexpr std::uint32_t kMaxFrameBytes = 4u << 20;

// Throws Error(io) when the connection fails.
void send_frame(boost::asio::ip::tcp::socket& socket, const google::protobuf::MessageLite& message);
// False on an orderly close; throws Error(protocol) on an oversized or malformed frame.
bool receive_frame(boost::asio::ip::tcp::socket& socket, google::protobuf::MessageLite& message);

// A node's listener.
struct Endpoint {
    std::string address;
    std::uint16_t port = 0;
    std::string text() const { return address + ":" + std::to_string(port); }
};
// "127.0.0.1:7000" -> Endpoint; throws Error(usage).
Endpoint parse_endpoint(const std::string& text);

// One request on a fresh connection, one reply (status, move, take-over). Throws Error(io)
// when the peer cannot be reached or does not answer within `timeout`.
void request_once(const Endpoint& peer, const google::protobuf::MessageLite& request,
                  google::protobuf::MessageLite& reply, std::chrono::milliseconds timeout);

} // namespace godwit::csv
