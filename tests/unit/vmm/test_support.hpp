// Shared helpers of the godwit_vmm unit tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "godwit/error.hpp"

// Runs f and expects a godwit::Error with this code whose message contains fragment.
template <typename F>
void expect_error(godwit::ErrorCode code, const std::string& fragment, F&& f) {
    try {
        f();
        ADD_FAILURE() << "expected godwit::Error(" << godwit::to_string(code) << ")";
    } catch (const godwit::Error& e) {
        EXPECT_EQ(e.code(), code) << e.what();
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
            << "message '" << e.what() << "' lacks '" << fragment << "'";
    }
}

inline std::vector<std::uint8_t> read_test_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    EXPECT_TRUE(in.good()) << "cannot open " << path;
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
