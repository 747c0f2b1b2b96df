// Framing of control messages on the godwitd socket: 4-byte big-endian length + payload.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace godwit::control {

// Largest frame either side accepts; anything larger is a protocol error.
inline constexpr std::uint32_t max_frame_bytes = 16u << 20;

std::string encode_frame(std::string_view payload);

// Length announced by a 4-byte header; throws Error(protocol) when above max_frame_bytes.
std::uint32_t decode_frame_length(const unsigned char header[4]);

} // namespace godwit::control
