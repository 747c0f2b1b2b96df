#include "godwit/vhd/vhd_format.hpp"

#include <cstring>
#include <ctime>

#include "godwit/error.hpp"

namespace godwit::vhd {
namespace {

std::uint64_t be(const std::uint8_t* p, int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i)
        v = (v << 8) | p[i];
    return v;
}
void put_be(std::uint8_t* p, std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) {
        p[i] = static_cast<std::uint8_t>(v);
        v >>= 8;
    }
}

} // namespace

const char* to_string(DiskType t) {
    switch (t) {
    case DiskType::fixed:
        return "fixed";
    case DiskType::dynamic:
        return "dynamic";
    case DiskType::differencing:
        return "differencing";
    }
    return "unknown";
}

Geometry geometry_for(std::uint64_t size_bytes) {
    std::uint64_t total = size_bytes / sector_size;
    std::uint64_t spt, heads, cth;
    if (total > 65535ull * 16 * 255)
        total = 65535ull * 16 * 255;
    if (total >= 65535ull * 16 * 63) {
        spt = 255;
        heads = 16;
        cth = total / spt;
    } else {
        spt = 17;
        cth = total / spt;
        heads = (cth + 1023) / 1024;
        if (heads < 4)
            heads = 4;
        if (cth >= heads * 1024 || heads > 16) {
            spt = 31;
            heads = 16;
            cth = total / spt;
        }
        if (cth >= heads * 1024) {
            spt = 63;
            heads = 16;
            cth = total / spt;
        }
    }
    return Geometry{static_cast<std::uint16_t>(cth / heads), static_cast<std::uint8_t>(heads),
                    static_cast<std::uint8_t>(spt)};
}

std::uint32_t vhd_checksum(const std::uint8_t* bytes, std::size_t length,
                           std::size_t checksum_offset) {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < length; ++i) {
        if (i >= checksum_offset && i < checksum_offset + 4)
            continue;
        sum += bytes[i];
    }
    return ~sum;
}

bool looks_like_footer(const std::uint8_t* bytes) {
    return std::memcmp(bytes, "conectix", 8) == 0;
}

Footer parse_footer(const std::uint8_t* b) {
    if (!looks_like_footer(b))
        throw Error(ErrorCode::invalid_input, "no VHD footer (cookie 'conectix' missing)");
    Footer f;
    f.features = static_cast<std::uint32_t>(be(b + 8, 4));
    f.format_version = static_cast<std::uint32_t>(be(b + 12, 4));
    f.data_offset = be(b + 16, 8);
    f.timestamp = static_cast<std::uint32_t>(be(b + 24, 4));
    std::memcpy(f.creator_app.data(), b + 28, 4);
    f.creator_version = static_cast<std::uint32_t>(be(b + 32, 4));
    std::memcpy(f.creator_os.data(), b + 36, 4);
    f.original_size = be(b + 40, 8);
    f.current_size = be(b + 48, 8);
    f.geometry = Geometry{static_cast<std::uint16_t>(be(b + 56, 2)), b[58], b[59]};
    std::uint32_t type = static_cast<std::uint32_t>(be(b + 60, 4));
    f.checksum = static_cast<std::uint32_t>(be(b + 64, 4));
    std::memcpy(f.unique_id.data(), b + 68, 16);
    f.saved_state = b[84];
    f.checksum_ok = f.checksum == vhd_checksum(b, 512, 64);
    if (type < 2 || type > 4) {
        throw Error(ErrorCode::invalid_input,
                    "VHD footer has unknown disk type " + std::to_string(type));
    }
    f.type = static_cast<DiskType>(type);
    if ((f.format_version >> 16) != 1) {
        throw Error(ErrorCode::unsupported,
                    "VHD format version " + std::to_string(f.format_version >> 16) + "." +
                        std::to_string(f.format_version & 0xFFFF) + " is not 1.x");
    }
    if (f.current_size > max_disk_size || f.current_size % sector_size != 0) {
        throw Error(ErrorCode::invalid_input, "VHD size " + std::to_string(f.current_size) +
                                                  " is not a multiple of 512 or exceeds 2040 GiB");
    }
    return f;
}

std::array<std::uint8_t, 512> serialize_footer(const Footer& f) {
    std::array<std::uint8_t, 512> b{};
    std::memcpy(b.data(), "conectix", 8);
    put_be(b.data() + 8, f.features, 4);
    put_be(b.data() + 12, f.format_version, 4);
    put_be(b.data() + 16, f.data_offset, 8);
    put_be(b.data() + 24, f.timestamp, 4);
    std::memcpy(b.data() + 28, f.creator_app.data(), 4);
    put_be(b.data() + 32, f.creator_version, 4);
    std::memcpy(b.data() + 36, f.creator_os.data(), 4);
    put_be(b.data() + 40, f.original_size, 8);
    put_be(b.data() + 48, f.current_size, 8);
    put_be(b.data() + 56, f.geometry.cylinders, 2);
    b[58] = f.geometry.heads;
    b[59] = f.geometry.sectors_per_track;
    put_be(b.data() + 60, static_cast<std::uint32_t>(f.type), 4);
    std::memcpy(b.data() + 68, f.unique_id.data(), 16);
    b[84] = f.saved_state;
    put_be(b.data() + 64, vhd_checksum(b.data(), 512, 64), 4);
    return b;
}

DynamicHeader parse_dynamic_header(const std::uint8_t* b) {
    if (std::memcmp(b, "cxsparse", 8) != 0) {
        throw Error(ErrorCode::invalid_input, "no VHD dynamic header (cookie 'cxsparse' missing)");
    }
    DynamicHeader h;
    h.data_offset = be(b + 8, 8);
    h.table_offset = be(b + 16, 8);
    h.header_version = static_cast<std::uint32_t>(be(b + 24, 4));
    h.max_table_entries = static_cast<std::uint32_t>(be(b + 28, 4));
    h.block_size = static_cast<std::uint32_t>(be(b + 32, 4));
    h.checksum = static_cast<std::uint32_t>(be(b + 36, 4));
    std::memcpy(h.parent_uuid.data(), b + 40, 16);
    h.parent_timestamp = static_cast<std::uint32_t>(be(b + 56, 4));
    for (int i = 0; i < 256; ++i) {
        char16_t c = static_cast<char16_t>(be(b + 64 + 2 * i, 2));
        if (c == 0)
            break;
        h.parent_name.push_back(c);
    }
    for (int i = 0; i < 8; ++i) {
        const std::uint8_t* e = b + 576 + 24 * i;
        h.locators[i] = ParentLocator{static_cast<LocatorPlatform>(be(e, 4)),
                                      static_cast<std::uint32_t>(be(e + 4, 4)),
                                      static_cast<std::uint32_t>(be(e + 8, 4)), be(e + 16, 8)};
    }
    h.checksum_ok = h.checksum == vhd_checksum(b, 1024, 36);
    if (h.block_size < sector_size * 8 || (h.block_size & (h.block_size - 1)) != 0 ||
        h.block_size > (256u << 20)) {
        throw Error(ErrorCode::invalid_input,
                    "VHD block size " + std::to_string(h.block_size) +
                        " is not a power of two between 4 KiB and 256 MiB");
    }
    return h;
}

std::array<std::uint8_t, 1024> serialize_dynamic_header(const DynamicHeader& h) {
    std::array<std::uint8_t, 1024> b{};
    std::memcpy(b.data(), "cxsparse", 8);
    put_be(b.data() + 8, h.data_offset, 8);
    put_be(b.data() + 16, h.table_offset, 8);
    put_be(b.data() + 24, h.header_version, 4);
    put_be(b.data() + 28, h.max_table_entries, 4);
    put_be(b.data() + 32, h.block_size, 4);
    std::memcpy(b.data() + 40, h.parent_uuid.data(), 16);
    put_be(b.data() + 56, h.parent_timestamp, 4);
    for (std::size_t i = 0; i < h.parent_name.size() && i < 256; ++i)
        put_be(b.data() + 64 + 2 * i, h.parent_name[i], 2);
    for (int i = 0; i < 8; ++i) {
        std::uint8_t* e = b.data() + 576 + 24 * i;
        put_be(e, static_cast<std::uint32_t>(h.locators[i].platform), 4);
        put_be(e + 4, h.locators[i].data_space, 4);
        put_be(e + 8, h.locators[i].data_length, 4);
        put_be(e + 16, h.locators[i].data_offset, 8);
    }
    put_be(b.data() + 36, vhd_checksum(b.data(), 1024, 36), 4);
    return b;
}

std::u16string utf8_to_utf16(const std::string& s) {
    std::u16string out;
    for (std::size_t i = 0; i < s.size();) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        std::uint32_t cp;
        int n;
        if (c < 0x80) {
            cp = c;
            n = 1;
        } else if ((c >> 5) == 6) {
            cp = c & 0x1F;
            n = 2;
        } else if ((c >> 4) == 14) {
            cp = c & 0x0F;
            n = 3;
        } else {
            cp = c & 0x07;
            n = 4;
        }
        if (i + n > s.size())
            throw Error(ErrorCode::invalid_input, "path is not valid UTF-8");
        for (int k = 1; k < n; ++k)
            cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
        i += n;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out.push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
            out.push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FF)));
        } else {
            out.push_back(static_cast<char16_t>(cp));
        }
    }
    return out;
}

std::string utf16_to_utf8(const std::u16string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        std::uint32_t cp = s[i];
        if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < s.size())
            cp = 0x10000 + ((cp - 0xD800) << 10) + (s[++i] - 0xDC00);
        if (cp < 0x80)
            out.push_back(static_cast<char>(cp));
        else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
            out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
    }
    return out;
}

std::uint32_t vhd_timestamp_now() {
    constexpr std::time_t epoch_2000 = 946684800;
    std::time_t now = std::time(nullptr);
    return now > epoch_2000 ? static_cast<std::uint32_t>(now - epoch_2000) : 0;
}

} // namespace godwit::vhd
