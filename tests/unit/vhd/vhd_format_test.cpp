#include "godwit/vhd/vhd_format.hpp"

#include <gtest/gtest.h>

#include "godwit/error.hpp"

namespace godwit::vhd {
namespace {

TEST(VhdGeometry, SpecAlgorithm) {
    auto g = geometry_for(64ull << 20); // 131072 sectors
    EXPECT_EQ(g.sectors_per_track, 17);
    EXPECT_EQ(g.heads, 8);
    EXPECT_EQ(g.cylinders, 963);
    auto big = geometry_for(127ull << 30); // beyond 65535*16*63 sectors
    EXPECT_EQ(big.sectors_per_track, 255);
    EXPECT_EQ(big.heads, 16);
    auto max = geometry_for(2040ull << 30);
    EXPECT_EQ(max.cylinders, 65535);
    for (std::uint64_t mib : {1ull, 10ull, 100ull, 1000ull, 10000ull}) {
        EXPECT_LE(geometry_for(mib << 20).bytes(), mib << 20); // CHS never exceeds the size
    }
}

TEST(VhdFooter, RoundTripAndChecksum) {
    Footer f;
    f.type = DiskType::dynamic;
    f.data_offset = 512;
    f.current_size = f.original_size = 1ull << 30;
    f.geometry = geometry_for(f.current_size);
    f.unique_id[0] = 0xAB;
    auto bytes = serialize_footer(f);
    Footer g = parse_footer(bytes.data());
    EXPECT_TRUE(g.checksum_ok);
    EXPECT_EQ(g.type, DiskType::dynamic);
    EXPECT_EQ(g.current_size, 1ull << 30);
    EXPECT_EQ(g.creator(), "gdwt");
    EXPECT_EQ(g.unique_id[0], 0xAB);
    EXPECT_EQ(bytes[60], 0); // big-endian disk type 3
    EXPECT_EQ(bytes[63], 3);
    bytes[100] ^= 1;
    EXPECT_FALSE(parse_footer(bytes.data()).checksum_ok);
}

TEST(VhdFooter, RejectsImpossibleFields) {
    Footer f;
    f.current_size = 4096;
    auto bytes = serialize_footer(f);
    auto bad_cookie = bytes;
    bad_cookie[0] = 'X';
    EXPECT_THROW(parse_footer(bad_cookie.data()), Error);
    auto bad_type = bytes;
    bad_type[63] = 9;
    EXPECT_THROW(parse_footer(bad_type.data()), Error);
    Footer huge = f;
    huge.current_size = 3000ull << 30;
    auto h = serialize_footer(huge);
    EXPECT_THROW(parse_footer(h.data()), Error);
    Footer odd = f;
    odd.current_size = 1000;
    auto o = serialize_footer(odd);
    EXPECT_THROW(parse_footer(o.data()), Error);
}

TEST(VhdHeader, RoundTripWithParent) {
    DynamicHeader h;
    h.table_offset = 1536;
    h.max_table_entries = 512;
    h.parent_name = utf8_to_utf16("bäse.vhd");
    h.locators[0] = ParentLocator{LocatorPlatform::w2ru, 512, 20, 4096};
    auto bytes = serialize_dynamic_header(h);
    DynamicHeader g = parse_dynamic_header(bytes.data());
    EXPECT_TRUE(g.checksum_ok);
    EXPECT_EQ(utf16_to_utf8(g.parent_name), "bäse.vhd");
    EXPECT_EQ(g.locators[0].platform, LocatorPlatform::w2ru);
    EXPECT_EQ(g.locators[0].data_offset, 4096u);
    bytes[32] = 0x7F; // block size no longer a power of two
    EXPECT_THROW(parse_dynamic_header(bytes.data()), Error);
}

} // namespace
} // namespace godwit::vhd
