// Addressing and framing constants of the CSV node protocol (docs/csv-protocol.md §2):
// every message is a 4-byte little-endian length and one serialized protobuf message.
#pragma once

#include <cstdint>
#include <string>

namespace godwit::csv {

inline constexpr std::uint32_t kMaxFrameBytes = 4u << 20;

// A node's listener.
struct Endpoint {
    std::string address;
    std::uint16_t port = 0;
    std::string text() const { return address + ":" + std::to_string(port); }
};
// "127.0.0.1:7000" -> Endpoint; throws Error(usage).
Endpoint parse_endpoint(const std::string& text);

} // namespace godwit::csv
