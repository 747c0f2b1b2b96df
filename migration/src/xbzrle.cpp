#include "godwit/migration/xbzrle.hpp"

#include <cstring>

namespace godwit::migration::xbzrle {
namespace {

void put_varint(std::vector<std::uint8_t>& out, std::size_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<std::uint8_t>(v | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<std::uint8_t>(v));
}

bool get_varint(const std::uint8_t*& p, const std::uint8_t* end, std::size_t& v) {
    v = 0;
    for (int shift = 0; shift < 28; shift += 7) {
        if (p == end)
            return false;
        std::uint8_t b = *p++;
        v |= static_cast<std::size_t>(b & 0x7F) << shift;
        if ((b & 0x80) == 0)
            return true;
    }
    return false;
}

} // namespace

bool encode(const std::uint8_t* before, const std::uint8_t* now, std::size_t size,
            std::size_t limit, std::vector<std::uint8_t>& out) {
    out.clear();
    std::size_t i = 0;
    while (i < size) {
        std::size_t same = 0;
        while (i + same < size && before[i + same] == now[i + same])
            ++same;
        i += same;
        if (i == size)
            break; // trailing unchanged bytes are implied
        std::size_t diff = 0;
        // A changed run ends at 2+ unchanged bytes (one equal byte is cheaper to copy).
        while (i + diff < size &&
               (before[i + diff] != now[i + diff] ||
                (i + diff + 1 < size && before[i + diff + 1] != now[i + diff + 1]))) {
            ++diff;
        }
        put_varint(out, same);
        put_varint(out, diff);
        out.insert(out.end(), now + i, now + i + diff);
        i += diff;
        if (out.size() > limit)
            return false;
    }
    return out.size() <= limit;
}

bool decode(const std::uint8_t* encoded, std::size_t length, std::uint8_t* page, std::size_t size) {
    const std::uint8_t* p = encoded;
    const std::uint8_t* end = encoded + length;
    std::size_t i = 0;
    while (p < end) {
        std::size_t same, diff;
        if (!get_varint(p, end, same) || !get_varint(p, end, diff))
            return false;
        if (same > size - i)
            return false;
        i += same;
        if (diff > size - i || diff > static_cast<std::size_t>(end - p) || diff == 0)
            return false;
        std::memcpy(page + i, p, diff);
        p += diff;
        i += diff;
    }
    return true;
}

} // namespace godwit::migration::xbzrle
