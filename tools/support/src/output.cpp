#include "godwit/output.hpp"

#include <cstdio>
#include <ostream>

namespace godwit {

Json error_to_json(const Error& error) {
    return Json{{"error",
                 {{"code", std::string(to_string(error.code()))},
                  {"exit_code", exit_code_for(error.code())},
                  {"message", error.what()}}}};
}

void print_json(std::ostream& out, const Json& document) {
    out << document.dump(2) << '\n';
}

std::string format_bytes(unsigned long long bytes) {
    static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 1024) {
        return std::to_string(bytes) + " B";
    }
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024.0 && unit < 5) {
        value /= 1024.0;
        ++unit;
    }
    char text[32];
    std::snprintf(text, sizeof text, "%.1f %s", value, units[unit]);
    return text;
}

} // namespace godwit
