// Message framing on a coordinator/node TCP connection: 4-byte little-endian length, then
// the serialized protobuf message (storage/csv/proto/csv_protocol.proto).
#pragma once

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

} // namespace godwit::csv
