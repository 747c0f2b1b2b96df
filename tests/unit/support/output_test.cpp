#include <sstream>

#include <gtest/gtest.h>

#include "godwit/output.hpp"

namespace godwit {
namespace {

TEST(Output, ErrorJsonShape) {
    Json j = error_to_json(Error(ErrorCode::invalid_input, "bad footer checksum"));
    EXPECT_EQ(j["error"]["code"], "invalid_input");
    EXPECT_EQ(j["error"]["exit_code"], 4);
    EXPECT_EQ(j["error"]["message"], "bad footer checksum");
}

TEST(Output, PrintJsonIsOneDocumentPerLine) {
    std::ostringstream out;
    print_json(out, Json{{"a", 1}});
    EXPECT_EQ(Json::parse(out.str())["a"], 1);
    EXPECT_EQ(out.str().back(), '\n');
}

TEST(Output, FormatsBytes) {
    EXPECT_EQ(format_bytes(0), "0 B");
    EXPECT_EQ(format_bytes(1023), "1023 B");
    EXPECT_EQ(format_bytes(1536), "1.5 KiB");
    EXPECT_EQ(format_bytes(2ull << 30), "2.0 GiB");
}

} // namespace
} // namespace godwit
