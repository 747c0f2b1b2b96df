// The migration stream's framing (docs/migration-stream.md): every record is a 16-byte
// little-endian frame header {magic "GWM1", type, flags, length, CRC32C of the payload}
// followed by the payload. Metadata payloads are protobuf (proto/migration.proto); page
// payloads are raw bytes behind a small binary index so 4 KiB pages are not copied through
// protobuf. Records with the `optional` flag may be skipped by readers that do not know
// their type; an unknown mandatory record is an error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "godwit/migration/channel.hpp"

namespace godwit::migration {

inline constexpr std::uint32_t stream_magic = 0x314D5747; // "GWM1" little-endian
inline constexpr std::uint32_t stream_version_major = 1;
inline constexpr std::uint32_t stream_version_minor = 0;
inline constexpr std::uint32_t max_record_bytes = 64u << 20;
inline constexpr std::uint16_t flag_optional = 1;

enum class RecordType : std::uint16_t {
    header = 1,        // wire::StreamHeader
    pages = 2,         // u32 count, count x u64 pfn, count x 4096 bytes
    zero_runs = 3,     // wire::ZeroRuns
    xbzrle_pages = 4,  // repeated {u64 pfn, u32 length, length bytes of XBZRLE delta}
    iteration_end = 5, // wire::IterationEnd
    state = 6,         // wire::StateBlob
    end = 7,           // wire::EndOfStream
    ack = 8,           // wire::Ack (destination -> source)
};

const char* to_string(RecordType t);

struct Record {
    std::uint16_t type;
    std::uint16_t flags;
    std::vector<std::uint8_t> payload;
};

std::uint32_t crc32c(const std::uint8_t* data, std::size_t length, std::uint32_t crc = 0);

class RecordWriter {
  public:
    explicit RecordWriter(Channel& channel) : channel_(channel) {}
    void write(RecordType type, const std::uint8_t* payload, std::size_t length,
               std::uint16_t flags = 0);
    void write(RecordType type, const std::string& payload, std::uint16_t flags = 0) {
        write(type, reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size(), flags);
    }

  private:
    Channel& channel_;
};

class RecordReader {
  public:
    explicit RecordReader(Channel& channel) : channel_(channel) {}
    // Next record, validated: magic, length limit, CRC. Throws Error(protocol) otherwise.
    // The reference stays valid until the next call (the payload buffer is reused: a fresh
    // megabyte per record would cost page faults on every record).
    const Record& next();

  private:
    Channel& channel_;
    Record record_;
};

// Parses a `pages` payload into pfns and a pointer to the page data; Error(protocol) when
// the sizes do not add up.
struct PagesView {
    std::vector<std::uint64_t> pfns;
    const std::uint8_t* data;
};
PagesView parse_pages(const std::vector<std::uint8_t>& payload);

} // namespace godwit::migration
