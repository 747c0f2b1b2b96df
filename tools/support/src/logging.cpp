#include "godwit/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace godwit {

std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name) noexcept {
    static constexpr std::pair<std::string_view, spdlog::level::level_enum> levels[] = {
        {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
        {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
        {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
        {"off", spdlog::level::off},
    };
    for (const auto& [n, level] : levels) {
        if (n == name) {
            return level;
        }
    }
    return std::nullopt;
}

void init_logging(spdlog::level::level_enum level) {
    spdlog::drop("godwit"); // idempotent: tests and re-entrant callers init more than once
    auto logger = spdlog::stderr_color_mt("godwit");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    logger->set_level(level);
    spdlog::set_default_logger(logger);
}

} // namespace godwit
