#include "godwit/vmm/vm_result.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "godwit/error.hpp"

using namespace godwit::vmm;
using godwit::ErrorCode;

TEST(VmResult, FromStopKeepsWhatTheOperatorNeeds) {
    VmResult exit0 = VmResult::from_stop({.reason = VmStop::Reason::debug_exit, .result = 1});
    EXPECT_EQ(exit0.kind, VmResult::Kind::debug_exit);
    EXPECT_EQ(exit0.exit_code, 0u); // the port reports (value << 1) | 1
    EXPECT_TRUE(exit0.clean());
    VmResult exit3 = VmResult::from_stop({.reason = VmStop::Reason::debug_exit, .result = 7});
    EXPECT_EQ(exit3.exit_code, 3u);
    EXPECT_FALSE(exit3.clean());
    EXPECT_NE(exit3.message.find("wrote 3"), std::string::npos) << exit3.message;

    VmResult isolation =
        VmResult::from_stop({.reason = VmStop::Reason::outside_ram, .address = 0x9000000});
    EXPECT_EQ(isolation.kind, VmResult::Kind::outside_ram);
    EXPECT_EQ(isolation.address, 0x9000000u);
    EXPECT_NE(isolation.message.find("0x9000000"), std::string::npos) << isolation.message;
    EXPECT_FALSE(isolation.clean());

    EXPECT_TRUE(VmResult::from_stop({.reason = VmStop::Reason::power_off}).clean());
    EXPECT_TRUE(VmResult::from_stop({.reason = VmStop::Reason::requested}).clean());
    EXPECT_EQ(VmResult::from_stop({.reason = VmStop::Reason::shutdown}).kind,
              VmResult::Kind::shutdown);
    VmResult failed = VmResult::from_stop(
        {.reason = VmStop::Reason::failed, .detail = "vCPU 0: device\nexploded"});
    EXPECT_EQ(failed.kind, VmResult::Kind::failed);
    EXPECT_EQ(failed.message.find('\n'), std::string::npos) << "results are one line";
    EXPECT_NE(failed.message.find("device exploded"), std::string::npos);
}

TEST(VmResult, JsonRoundTripsEveryKind) {
    for (auto kind : {VmResult::Kind::debug_exit, VmResult::Kind::power_off,
                      VmResult::Kind::outside_ram, VmResult::Kind::shutdown,
                      VmResult::Kind::stopped, VmResult::Kind::killed, VmResult::Kind::failed}) {
        VmResult r{kind, 5, 0xfee00020, 6, "why it ended"};
        std::string text = vm_result_to_json(r);
        EXPECT_EQ(text.find('\n'), text.size() - 1) << "one line";
        EXPECT_EQ(parse_vm_result(text, "t"), r) << text;
        EXPECT_EQ(vm_result_kind_from_string(to_string(kind)), kind);
    }
}

TEST(VmResult, RefusesWhatIsNotAResult) {
    for (const char* bad :
         {"", "not json", "[]", "{}", R"({"kind": 3})", R"({"kind": "exploded"})",
          R"({"kind": "failed", "exit_code": "x"})", R"({"kind": "failed", "exit_code": -1})"}) {
        try {
            parse_vm_result(bad, "result.json");
            ADD_FAILURE() << "accepted: " << bad;
        } catch (const godwit::Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::invalid_input) << bad;
            EXPECT_NE(std::string(e.what()).find("result.json"), std::string::npos);
        }
    }
}

TEST(VmResult, FileIsWrittenWholeAndMissingIsNotAnError) {
    char tmpl[] = "/tmp/godwit-vmresult-XXXXXX";
    std::filesystem::path dir = ::mkdtemp(tmpl);
    auto path = dir / "result.json";
    EXPECT_EQ(read_vm_result(path), std::nullopt);
    VmResult r{VmResult::Kind::outside_ram, 0, 0x1000000, 0, "touched 0x1000000"};
    write_vm_result(path, r);
    EXPECT_EQ(read_vm_result(path), r);
    EXPECT_FALSE(std::filesystem::exists(dir / "result.json.tmp"));
    std::ofstream(path) << "{\"kind\":";
    EXPECT_THROW(read_vm_result(path), godwit::Error);
    std::filesystem::remove_all(dir);
}
