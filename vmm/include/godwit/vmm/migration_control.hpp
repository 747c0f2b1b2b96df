// What godwitd and a VM worker exchange about a migration (docs/live-migration.md): the
// request godwitd writes for the source worker (RUN_DIR/NAME/migrate-request), the status
// document the worker keeps up to date (RUN_DIR/NAME/migration.json), where a destination
// is, and the host's TLS credentials.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "godwit/migration/channel.hpp"
#include "godwit/migration/migration.hpp"

namespace godwit::vmm {

// Godwit's migration listener port (the same as Hyper-V's live migration, 6600).
inline constexpr std::uint16_t default_migration_port = 6600;

struct Destination {
    std::string host;
    std::uint16_t port = default_migration_port;
    std::string to_string() const; // host:port ([v6]:port)
};
// "HOST", "HOST:PORT", "[V6]" or "[V6]:PORT"; Error(usage) names what is wrong.
Destination parse_destination(const std::string& text);

struct MigrateRequest {
    Destination destination;
    bool live = true;
    double downtime_limit_ms = 0;            // 0: the engine's default
    std::uint64_t bandwidth_bytes_per_s = 0; // 0: unlimited
    std::filesystem::path tls_dir;
};
nlohmann::json to_json(const MigrateRequest& request);
MigrateRequest migrate_request_from_json(const nlohmann::json& doc); // Error(invalid_input)

// The host's credentials in `dir`: ca.pem (the CA every host of the cluster trusts),
// host.pem (this host's certificate, signed by it) and host.key. Error(not_found) naming
// the missing file and how to provide it.
migration::TlsConfig tls_from_dir(const std::filesystem::path& dir);

// The migration status document.
struct MigrationStatus {
    std::string state = "none"; // none|starting|running|completed|failed|cancelled
    std::string destination;
    bool live = true;
    nlohmann::ordered_json progress; // object or null
    nlohmann::ordered_json report;   // object or null
    std::string error;
    bool in_flight() const { return state == "starting" || state == "running"; }
};
nlohmann::ordered_json progress_to_json(const migration::Progress& progress);
nlohmann::ordered_json to_json(const MigrationStatus& status);
MigrationStatus migration_status_from_json(const nlohmann::json& doc); // Error(invalid_input)
// A status document as text (the worker's file), at most max_migration_status_bytes.
inline constexpr std::size_t max_migration_status_bytes = 1 << 20;
MigrationStatus parse_migration_status(std::string_view text, const std::string& source);
// Written to a temporary file and renamed, so a reader never sees half a document.
void write_migration_status(const std::filesystem::path& file, const MigrationStatus& status);
// State "none" when the file does not exist; Error(invalid_input) when it is not a status.
MigrationStatus read_migration_status(const std::filesystem::path& file);

} // namespace godwit::vmm
