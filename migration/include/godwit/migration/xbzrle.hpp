// Delta compression of re-sent pages against the copy the destination already has (XOR-based
// run-length encoding in the spirit of QEMU's XBZRLE): alternating varint-length runs of
// unchanged bytes and of changed bytes, the latter followed by the new bytes.
#pragma once

#include <cstdint>
#include <vector>

namespace godwit::migration::xbzrle {

// Encodes `now` against `before` (both `size` bytes). Returns false when the encoding would
// exceed `limit` bytes (then send the page raw).
bool encode(const std::uint8_t* before, const std::uint8_t* now, std::size_t size,
            std::size_t limit, std::vector<std::uint8_t>& out);

// Applies an encoding to `page` (in place). False on a malformed or oversized encoding; the
// page is then left partially updated and the caller must treat the stream as broken.
bool decode(const std::uint8_t* encoded, std::size_t length, std::uint8_t* page, std::size_t size);

} // namespace godwit::migration::xbzrle
