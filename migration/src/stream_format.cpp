#include "godwit/migration/stream_format.hpp"

#include <array>
#include <cstring>

#include "godwit/error.hpp"

namespace godwit::migration {
namespace {

std::array<std::uint32_t, 256> make_table() {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1; // Castagnoli
        t[i] = c;
    }
    return t;
}

bool have_sse42() {
    static const bool yes = __builtin_cpu_supports("sse4.2");
    return yes;
}

__attribute__((target("sse4.2"))) std::uint32_t crc32c_hw(const std::uint8_t* p, std::size_t n,
                                                          std::uint32_t crc) {
    std::uint64_t c = crc;
    while (n >= 8) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    auto c32 = static_cast<std::uint32_t>(c);
    while (n-- > 0)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}

void put_le(std::uint8_t* p, std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i)
        p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint64_t get_le(const std::uint8_t* p, int n) {
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i)
        v = (v << 8) | p[i];
    return v;
}

} // namespace

std::uint32_t crc32c(const std::uint8_t* data, std::size_t length, std::uint32_t crc) {
    crc = ~crc;
    if (have_sse42()) {
        crc = crc32c_hw(data, length, crc);
    } else {
        static const auto table = make_table();
        for (std::size_t i = 0; i < length; ++i)
            crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    }
    return ~crc;
}

const char* to_string(RecordType t) {
    switch (t) {
    case RecordType::header:
        return "HEADER";
    case RecordType::pages:
        return "PAGES";
    case RecordType::zero_runs:
        return "ZERO_RUNS";
    case RecordType::xbzrle_pages:
        return "XBZRLE_PAGES";
    case RecordType::iteration_end:
        return "ITERATION_END";
    case RecordType::state:
        return "STATE";
    case RecordType::end:
        return "END";
    case RecordType::ack:
        return "ACK";
    }
    return "UNKNOWN";
}

void RecordWriter::write(RecordType type, const std::uint8_t* payload, std::size_t length,
                         std::uint16_t flags) {
    if (length > max_record_bytes)
        throw Error(ErrorCode::internal, "migration record too large");
    std::uint8_t h[16];
    put_le(h, stream_magic, 4);
    put_le(h + 4, static_cast<std::uint16_t>(type), 2);
    put_le(h + 6, flags, 2);
    put_le(h + 8, length, 4);
    put_le(h + 12, crc32c(payload, length), 4);
    channel_.write_all(h, sizeof h);
    if (length > 0)
        channel_.write_all(payload, length);
}

const Record& RecordReader::next() {
    std::uint8_t h[16];
    channel_.read_exact(h, sizeof h);
    if (get_le(h, 4) != stream_magic)
        throw Error(ErrorCode::protocol,
                    "migration stream: bad record magic (not a Godwit stream, or corrupted)");
    Record& r = record_;
    r.type = static_cast<std::uint16_t>(get_le(h + 4, 2));
    r.flags = static_cast<std::uint16_t>(get_le(h + 6, 2));
    std::uint64_t length = get_le(h + 8, 4);
    std::uint32_t crc = static_cast<std::uint32_t>(get_le(h + 12, 4));
    if (length > max_record_bytes) {
        throw Error(ErrorCode::protocol, "migration stream: record of " + std::to_string(length) +
                                             " bytes exceeds the limit");
    }
    r.payload.resize(length);
    if (length > 0)
        channel_.read_exact(r.payload.data(), length);
    if (crc32c(r.payload.data(), r.payload.size()) != crc) {
        throw Error(ErrorCode::protocol, std::string("migration stream: checksum mismatch in a ") +
                                             to_string(static_cast<RecordType>(r.type)) +
                                             " record (corrupted in transit)");
    }
    return r;
}

PagesView parse_pages(const std::vector<std::uint8_t>& p) {
    if (p.size() < 4)
        throw Error(ErrorCode::protocol, "PAGES record too short");
    std::uint64_t count = get_le(p.data(), 4);
    if (count == 0 || count > max_record_bytes / 4096 || p.size() != 4 + count * 8 + count * 4096) {
        throw Error(ErrorCode::protocol, "PAGES record size does not match its page count");
    }
    PagesView v;
    v.pfns.resize(count);
    for (std::uint64_t i = 0; i < count; ++i)
        v.pfns[i] = get_le(p.data() + 4 + 8 * i, 8);
    v.data = p.data() + 4 + 8 * count;
    return v;
}

} // namespace godwit::migration
