// libFuzzer target for what godwitd and a VM worker exchange about a migration
// (vmm/include/godwit/vmm/migration_control.hpp): the status file godwitd reads from a worker
// that runs beside a hostile guest, the request file, and a destination as an operator types
// it. Each must become a value or a godwit::Error; an accepted status must survive a
// write/read round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "godwit/error.hpp"
#include "godwit/vmm/migration_control.hpp"

// progress_to_json (not fuzzed) names the engine's phase names, which live with the engine.
const char* godwit::migration::to_string(Phase) {
    return "not used by the parsers";
}

using namespace godwit::vmm;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    try {
        MigrationStatus s = parse_migration_status(text, "fuzz");
        MigrationStatus back = parse_migration_status(to_json(s).dump(), "round trip");
        if (back.state != s.state || back.destination != s.destination || back.live != s.live ||
            back.error != s.error || back.progress != s.progress || back.report != s.report) {
            std::abort();
        }
    } catch (const godwit::Error&) {
    }
    try {
        Destination d = parse_destination(text);
        if (d.host.empty() || d.port == 0 ||
            parse_destination(d.to_string()).to_string() != d.to_string()) {
            std::abort();
        }
    } catch (const godwit::Error&) {
    }
    try {
        auto doc = nlohmann::json::parse(text, nullptr, false);
        if (!doc.is_discarded()) {
            MigrateRequest r = migrate_request_from_json(doc);
            MigrateRequest back = migrate_request_from_json(to_json(r));
            if (back.destination.to_string() != r.destination.to_string() || back.live != r.live) {
                std::abort();
            }
        }
    } catch (const godwit::Error&) {
    }
    return 0;
}
