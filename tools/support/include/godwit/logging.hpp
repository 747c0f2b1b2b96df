// Logging setup shared by godwit, godwitd and the test programs: spdlog to stderr,
// so stdout stays clean for results (and for --json).
#pragma once

#include <optional>
#include <string_view>

#include <spdlog/spdlog.h>

namespace godwit {

// Parses "trace|debug|info|warn|error|critical|off"; nullopt when unknown.
std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name) noexcept;

// Installs the default stderr logger at `level` (call once, early in main).
void init_logging(spdlog::level::level_enum level);

} // namespace godwit
