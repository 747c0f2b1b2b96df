#include <cerrno>

#include <gtest/gtest.h>

#include "godwit/error.hpp"
#include "godwit/logging.hpp"

namespace godwit {
namespace {

TEST(Error, CarriesCodeAndMessage) {
    Error e(ErrorCode::not_found, "vm 'web1' does not exist");
    EXPECT_EQ(e.code(), ErrorCode::not_found);
    EXPECT_STREQ(e.what(), "vm 'web1' does not exist");
    EXPECT_EQ(exit_code_for(e.code()), 3);
}

TEST(Error, ExitCodesAreStable) {
    EXPECT_EQ(exit_code_for(ErrorCode::failed), 1);
    EXPECT_EQ(exit_code_for(ErrorCode::usage), 2);
    EXPECT_EQ(exit_code_for(ErrorCode::invalid_input), 4);
    EXPECT_EQ(exit_code_for(ErrorCode::io), 5);
    EXPECT_EQ(exit_code_for(ErrorCode::protocol), 10);
    EXPECT_EQ(exit_code_for(ErrorCode::internal), 70);
    EXPECT_EQ(to_string(ErrorCode::invalid_input), "invalid_input");
}

TEST(Error, SystemErrorMapsErrno) {
    EXPECT_EQ(system_error("open a.vhd", ENOENT).code(), ErrorCode::not_found);
    Error e = system_error("write a.vhd", ENOSPC);
    EXPECT_EQ(e.code(), ErrorCode::io);
    EXPECT_NE(std::string(e.what()).find("write a.vhd: "), std::string::npos);
}

TEST(Logging, ParsesLevels) {
    EXPECT_EQ(parse_log_level("debug"), spdlog::level::debug);
    EXPECT_EQ(parse_log_level("error"), spdlog::level::err);
    EXPECT_FALSE(parse_log_level("loud").has_value());
}

} // namespace
} // namespace godwit
