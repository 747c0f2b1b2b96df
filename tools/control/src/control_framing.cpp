#include "godwit/control_framing.hpp"

#include "godwit/error.hpp"

namespace godwit::control {

std::string encode_frame(std::string_view payload) {
    if (payload.size() > max_frame_bytes) {
        throw Error(ErrorCode::internal, "control message of " + std::to_string(payload.size()) +
                                             " bytes exceeds the frame limit");
    }
    auto n = static_cast<std::uint32_t>(payload.size());
    std::string frame;
    frame.reserve(4 + payload.size());
    frame.push_back(static_cast<char>(n >> 24));
    frame.push_back(static_cast<char>(n >> 16));
    frame.push_back(static_cast<char>(n >> 8));
    frame.push_back(static_cast<char>(n));
    frame.append(payload);
    return frame;
}

std::uint32_t decode_frame_length(const unsigned char header[4]) {
    std::uint32_t n = (std::uint32_t{header[0]} << 24) | (std::uint32_t{header[1]} << 16) |
                      (std::uint32_t{header[2]} << 8) | std::uint32_t{header[3]};
    if (n > max_frame_bytes) {
        throw Error(ErrorCode::protocol, "control frame of " + std::to_string(n) +
                                             " bytes exceeds the limit of " +
                                             std::to_string(max_frame_bytes));
    }
    return n;
}

} // namespace godwit::control
