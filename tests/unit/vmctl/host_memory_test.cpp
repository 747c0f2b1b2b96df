#include "host_memory.hpp"

#include <gtest/gtest.h>

#include "godwit/error.hpp"

using namespace godwit::daemon;

TEST(HostMemory, ParsesMemAvailableInMiB) {
    const std::string meminfo = "MemTotal:        2014464 kB\n"
                                "MemFree:          123456 kB\n"
                                "MemAvailable:     876544 kB\n"
                                "Buffers:           10240 kB\n";
    EXPECT_EQ(parse_mem_available_mib(meminfo), 856u); // 876544 / 1024, rounded down
}

TEST(HostMemory, MissingOrMalformedLineIsNotAGuess) {
    EXPECT_EQ(parse_mem_available_mib("MemTotal: 100 kB\nMemFree: 50 kB\n"), std::nullopt);
    EXPECT_EQ(parse_mem_available_mib("MemAvailable: lots\n"), std::nullopt);
    EXPECT_EQ(parse_mem_available_mib("MemAvailable: 100 MB\n"), std::nullopt);
    EXPECT_EQ(parse_mem_available_mib(""), std::nullopt);
}

TEST(HostMemory, ReadsThisHostsMeminfo) {
    EXPECT_GT(read_mem_available_mib(), 0u);
    try {
        read_mem_available_mib("/nonexistent/meminfo");
        FAIL() << "a missing file must throw";
    } catch (const godwit::Error& e) {
        EXPECT_EQ(e.code(), godwit::ErrorCode::not_found);
    }
}
