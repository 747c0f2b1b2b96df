#include "platform/cmdline.hpp"

#include <gtest/gtest.h>

namespace godwit::hv {
namespace {

TEST(Cmdline, Words) {
    const char* c = "selftest serial=0x2f8,9600 loglevel=debug";
    EXPECT_TRUE(cmdline_has_word(c, "selftest"));
    EXPECT_TRUE(cmdline_has_word(c, "serial"));
    EXPECT_FALSE(cmdline_has_word(c, "self"));
    EXPECT_FALSE(cmdline_has_word(c, "test"));
    EXPECT_FALSE(cmdline_has_word("", "selftest"));
    EXPECT_FALSE(cmdline_has_word(nullptr, "selftest"));
}

TEST(Cmdline, Values) {
    char v[16];
    EXPECT_TRUE(cmdline_value("a=1 loglevel=debug", "loglevel", v, sizeof v));
    EXPECT_STREQ(v, "debug");
    EXPECT_FALSE(cmdline_value("loglevel", "loglevel", v, sizeof v)); // no '='
    EXPECT_TRUE(cmdline_value("k=0123456789abcdefXYZ", "k", v, sizeof v));
    EXPECT_STREQ(v, "0123456789abcde"); // truncated, terminated
}

TEST(Cmdline, Numbers) {
    u64 n = 0;
    const char* rest = nullptr;
    EXPECT_TRUE(parse_u64("0x2f8,9600", n, &rest));
    EXPECT_EQ(n, 0x2F8u);
    EXPECT_EQ(*rest, ',');
    EXPECT_TRUE(parse_u64("115200", n));
    EXPECT_EQ(n, 115200u);
    EXPECT_FALSE(parse_u64("", n));
    EXPECT_FALSE(parse_u64("0x", n));
    EXPECT_FALSE(parse_u64("12z", n));
    EXPECT_FALSE(parse_u64("99999999999999999999", n)); // overflow
}

} // namespace
} // namespace godwit::hv
