#include "host_memory.hpp"

#include <fstream>
#include <iterator>
#include <sstream>

#include "godwit/error.hpp"

namespace godwit::daemon {

std::optional<std::uint64_t> parse_mem_available_mib(const std::string& meminfo) {
    std::istringstream in(meminfo);
    std::string line;
    while (std::getline(in, line)) {
        // "MemAvailable:    1234567 kB"
        if (line.rfind("MemAvailable:", 0) != 0) {
            continue;
        }
        std::istringstream fields(line.substr(13));
        std::uint64_t kib = 0;
        std::string unit;
        if (!(fields >> kib >> unit) || unit != "kB") {
            return std::nullopt;
        }
        return kib / 1024;
    }
    return std::nullopt;
}

std::uint64_t read_mem_available_mib(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        throw system_error("reading " + path, errno);
    }
    std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    auto mib = parse_mem_available_mib(text);
    if (!mib) {
        throw Error(ErrorCode::io, path + " has no MemAvailable line (Linux 3.14 or later needed)");
    }
    return *mib;
}

} // namespace godwit::daemon
