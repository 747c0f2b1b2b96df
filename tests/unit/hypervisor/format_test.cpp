#include "lib/format.hpp"

#include <cstring>
#include <string>

#include <gtest/gtest.h>

namespace godwit::hv {
namespace {

std::string fmt(const char* f, auto... args) {
    char buf[128];
    format_to(buf, sizeof buf, f, args...);
    return buf;
}

TEST(Format, Integers) {
    EXPECT_EQ(fmt("%d %i %u", -42, 7, 4000000000u), "-42 7 4000000000");
    EXPECT_EQ(fmt("%x %X", 0xbeefu, 0xbeefu), "beef BEEF");
    EXPECT_EQ(fmt("%lu %ld", 18446744073709551615ul, -9223372036854775807l - 1),
              "18446744073709551615 -9223372036854775808");
    EXPECT_EQ(fmt("%zu", sizeof(u64)), "8");
}

TEST(Format, WidthPaddingJustification) {
    EXPECT_EQ(fmt("[%5d]", 42), "[   42]");
    EXPECT_EQ(fmt("[%05d]", -42), "[-0042]");
    EXPECT_EQ(fmt("[%-5d]", 42), "[42   ]");
    EXPECT_EQ(fmt("[%016lx]", 0x1234ul), "[0000000000001234]");
    EXPECT_EQ(fmt("[%-6s]", "ab"), "[ab    ]");
}

TEST(Format, StringsCharsPointers) {
    EXPECT_EQ(fmt("%s|%c|%%", "hi", 'x'), "hi|x|%");
    const char* volatile null_string = nullptr; // volatile: GCC would flag a literal null
    EXPECT_EQ(fmt("%s", null_string), "(null)");
    EXPECT_EQ(fmt("%p", reinterpret_cast<void*>(0x200000)), "0x0000000000200000");
    EXPECT_EQ(fmt("%q"), "%q"); // unknown conversions stay visible
}

TEST(Format, TruncatesButReportsFullLength) {
    char buf[8];
    usize n = format_to(buf, sizeof buf, "%s", "0123456789");
    EXPECT_EQ(n, 10u);
    EXPECT_STREQ(buf, "0123456");
    EXPECT_EQ(format_to(nullptr, 0, "abc"), 3u);
}

} // namespace
} // namespace godwit::hv
