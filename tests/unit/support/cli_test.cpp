// Drives the real CLI dispatcher with a test command registered in this binary.
#include <sstream>
#include <vector>

#include <gtest/gtest.h>

#include "cli.hpp"
#include "godwit/error.hpp"

namespace godwit::cli {
namespace {

int run_echo(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("count,n", po::value<int>()->default_value(1), "times");
    options.add_options()("word", po::value<std::string>()->required(), "what to echo");
    po::positional_options_description positional;
    positional.add("word", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    if (vm["word"].as<std::string>() == "missing") {
        throw Error(ErrorCode::not_found, "no such word");
    }
    if (inv.json) {
        print_json(*inv.out,
                   Json{{"word", vm["word"].as<std::string>()}, {"count", vm["count"].as<int>()}});
    } else {
        for (int i = 0; i < vm["count"].as<int>(); ++i) {
            *inv.out << vm["word"].as<std::string>() << '\n';
        }
    }
    return 0;
}

const Registration registration{{"testgroup", "echo", "[-n N] WORD", "echo a word", run_echo}};

struct Result {
    int code;
    std::string out, err;
};

Result run_cli(std::vector<std::string> args) {
    args.insert(args.begin(), "godwit");
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    std::ostringstream out, err;
    int code = run(static_cast<int>(argv.size()), argv.data(), out, err);
    return {code, out.str(), err.str()};
}

TEST(Cli, RunsCommand) {
    auto r = run_cli({"testgroup", "echo", "-n", "2", "hi"});
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.out, "hi\nhi\n");
}

TEST(Cli, JsonAnywhere) {
    auto r = run_cli({"testgroup", "echo", "hi", "--json"});
    EXPECT_EQ(r.code, 0);
    auto j = Json::parse(r.out);
    EXPECT_EQ(j["word"], "hi");
}

TEST(Cli, ErrorsBecomeExitCodes) {
    auto r = run_cli({"testgroup", "echo", "missing"});
    EXPECT_EQ(r.code, 3);
    EXPECT_NE(r.err.find("no such word"), std::string::npos);
    auto j = run_cli({"--json", "testgroup", "echo", "missing"});
    EXPECT_EQ(j.code, 3);
    EXPECT_EQ(Json::parse(j.out)["error"]["code"], "not_found");
}

TEST(Cli, UsageErrors) {
    EXPECT_EQ(run_cli({"nosuch"}).code, 2);
    EXPECT_EQ(run_cli({"testgroup", "nosuch"}).code, 2);
    EXPECT_EQ(run_cli({"testgroup", "echo"}).code, 2); // missing required WORD
    EXPECT_EQ(run_cli({"testgroup", "echo", "--bogus", "x"}).code, 2);
    EXPECT_EQ(run_cli({"--log-level", "loud", "testgroup", "echo", "x"}).code, 2);
}

TEST(Cli, HelpListsCommands) {
    auto r = run_cli({"--help"});
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("testgroup echo"), std::string::npos);
    auto c = run_cli({"testgroup", "echo", "--help"});
    EXPECT_EQ(c.code, 0);
    EXPECT_NE(c.out.find("--count"), std::string::npos);
}

} // namespace
} // namespace godwit::cli
