// VHD on-disk structures (Microsoft "Virtual Hard Disk Image Format Specification" 1.0):
// the 512-byte footer ("conectix"), the 1024-byte dynamic header ("cxsparse"), parent
// locators, the CHS geometry algorithm. All fields big-endian; parse() validates and
// serialize() writes them with a correct one's-complement checksum.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace godwit::vhd {

inline constexpr std::uint64_t sector_size = 512;
inline constexpr std::uint32_t default_block_size = 2u << 20;
inline constexpr std::uint64_t max_disk_size = 2040ull << 30; // spec limit: 2040 GiB
inline constexpr std::uint32_t bat_unused = 0xFFFFFFFF;

enum class DiskType : std::uint32_t { fixed = 2, dynamic = 3, differencing = 4 };

const char* to_string(DiskType t);

struct Geometry {
    std::uint16_t cylinders;
    std::uint8_t heads;
    std::uint8_t sectors_per_track;
    std::uint64_t bytes() const {
        return std::uint64_t{cylinders} * heads * sectors_per_track * sector_size;
    }
};

// The spec's CHS algorithm (Appendix "CHS Calculation").
Geometry geometry_for(std::uint64_t size_bytes);

struct Footer {
    std::uint32_t features = 2;
    std::uint32_t format_version = 0x00010000;
    std::uint64_t data_offset = ~0ull; // fixed: all ones; dynamic/differencing: header offset
    std::uint32_t timestamp = 0;       // seconds since 2000-01-01 00:00:00 UTC
    std::array<char, 4> creator_app{{'g', 'd', 'w', 't'}};
    std::uint32_t creator_version = 0x00010000;
    std::array<char, 4> creator_os{{'W', 'i', '2', 'k'}};
    std::uint64_t original_size = 0;
    std::uint64_t current_size = 0;
    Geometry geometry{};
    DiskType type = DiskType::fixed;
    std::uint32_t checksum = 0; // as read (serialize recomputes)
    std::array<std::uint8_t, 16> unique_id{};
    std::uint8_t saved_state = 0;

    bool checksum_ok = true; // parse(): was the stored checksum right?
    std::string creator() const { return std::string(creator_app.data(), 4); }
};

// Parses 512 bytes. Throws godwit::Error(invalid_input) when the cookie is missing or a field
// is impossible (unknown type, size above the limit); a bad checksum is reported in
// checksum_ok, not thrown (check and info must be able to show it).
Footer parse_footer(const std::uint8_t* bytes);
std::array<std::uint8_t, 512> serialize_footer(const Footer& f);
bool looks_like_footer(const std::uint8_t* bytes); // cookie only

enum class LocatorPlatform : std::uint32_t {
    none = 0,
    w2ru = 0x57327275, // relative path, UTF-16LE
    w2ku = 0x57326B75, // absolute path, UTF-16LE
};

struct ParentLocator {
    LocatorPlatform platform = LocatorPlatform::none;
    std::uint32_t data_space = 0;  // bytes reserved (Hyper-V writes bytes; sectors per the spec)
    std::uint32_t data_length = 0; // bytes of path
    std::uint64_t data_offset = 0; // file offset of the path
};

struct DynamicHeader {
    std::uint64_t data_offset = ~0ull;
    std::uint64_t table_offset = 0;
    std::uint32_t header_version = 0x00010000;
    std::uint32_t max_table_entries = 0;
    std::uint32_t block_size = default_block_size;
    std::uint32_t checksum = 0;
    std::array<std::uint8_t, 16> parent_uuid{};
    std::uint32_t parent_timestamp = 0;
    std::u16string parent_name; // UTF-16 (big-endian on disk)
    std::array<ParentLocator, 8> locators{};

    bool checksum_ok = true;
};

DynamicHeader parse_dynamic_header(const std::uint8_t* bytes); // 1024 bytes
std::array<std::uint8_t, 1024> serialize_dynamic_header(const DynamicHeader& h);

// One's complement of the byte sum, with the 4 checksum bytes at `checksum_offset` taken as 0.
std::uint32_t vhd_checksum(const std::uint8_t* bytes, std::size_t length,
                           std::size_t checksum_offset);

// UTF-8 <-> UTF-16 for parent names and locators (paths are ASCII/UTF-8 on Linux).
std::u16string utf8_to_utf16(const std::string& s);
std::string utf16_to_utf8(const std::u16string& s);

// Seconds since 2000-01-01 UTC, the VHD epoch.
std::uint32_t vhd_timestamp_now();

} // namespace godwit::vhd
