#include "godwit/vmm/migration_control.hpp"

#include <unistd.h>

#include <charconv>
#include <fstream>

#include <fmt/format.h>

#include "godwit/error.hpp"

namespace godwit::vmm {

namespace fs = std::filesystem;

std::string Destination::to_string() const {
    if (host.find(':') != std::string::npos) {
        return fmt::format("[{}]:{}", host, port); // IPv6
    }
    return fmt::format("{}:{}", host, port);
}

Destination parse_destination(const std::string& text) {
    auto bad = [&](const char* why) {
        return Error(
            ErrorCode::usage,
            fmt::format("bad destination '{}': {} (HOST, HOST:PORT or [IPV6]:PORT)", text, why));
    };
    Destination d;
    std::string port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string::npos) {
            throw bad("no closing ']'");
        }
        d.host = text.substr(1, close - 1);
        std::string rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                throw bad("text after ']'");
            }
            port = rest.substr(1);
        }
    } else {
        auto colon = text.find(':');
        if (colon != std::string::npos && text.find(':', colon + 1) != std::string::npos) {
            throw bad("an IPv6 address needs brackets");
        }
        d.host = text.substr(0, colon);
        if (colon != std::string::npos) {
            port = text.substr(colon + 1);
        }
    }
    if (d.host.empty()) {
        throw bad("no host");
    }
    if (d.host.find_first_of(" \t/\\") != std::string::npos) {
        throw bad("not a host name or address");
    }
    if (!port.empty() || text.back() == ':') {
        unsigned value = 0;
        auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535) {
            throw bad("the port is not a number from 1 to 65535");
        }
        d.port = static_cast<std::uint16_t>(value);
    }
    return d;
}

nlohmann::json to_json(const MigrateRequest& r) {
    return {{"host", r.destination.host},
            {"port", r.destination.port},
            {"live", r.live},
            {"downtime_limit_ms", r.downtime_limit_ms},
            {"bandwidth_bytes_per_s", r.bandwidth_bytes_per_s},
            {"tls_dir", r.tls_dir.string()}};
}

MigrateRequest migrate_request_from_json(const nlohmann::json& doc) {
    try {
        MigrateRequest r;
        r.destination.host = doc.at("host").get<std::string>();
        r.destination.port = doc.at("port").get<std::uint16_t>();
        r.live = doc.at("live").get<bool>();
        r.downtime_limit_ms = doc.at("downtime_limit_ms").get<double>();
        r.bandwidth_bytes_per_s = doc.at("bandwidth_bytes_per_s").get<std::uint64_t>();
        r.tls_dir = doc.at("tls_dir").get<std::string>();
        return r;
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorCode::invalid_input, std::string("bad migration request: ") + e.what());
    }
}

migration::TlsConfig tls_from_dir(const fs::path& dir) {
    migration::TlsConfig tls;
    tls.ca_file = (dir / "ca.pem").string();
    tls.cert_file = (dir / "host.pem").string();
    tls.key_file = (dir / "host.key").string();
    for (const std::string* file : {&tls.ca_file, &tls.cert_file, &tls.key_file}) {
        if (::access(file->c_str(), R_OK) != 0) {
            throw Error(ErrorCode::not_found,
                        fmt::format("{} is missing or unreadable: migration needs this host's "
                                    "credentials in {} (ca.pem, host.pem, host.key; see "
                                    "docs/live-migration.md \"Trust between hosts\")",
                                    *file, dir.string()));
        }
    }
    return tls;
}

nlohmann::ordered_json progress_to_json(const migration::Progress& p) {
    return {{"phase", migration::to_string(p.phase)},
            {"iteration", p.iteration},
            {"percent", p.percent},
            {"bytes_sent", p.bytes_sent},
            {"pages_remaining", p.pages_remaining},
            {"dirty_rate_pages_per_s", p.dirty_rate_pages_per_s},
            {"bandwidth_bytes_per_s", p.bandwidth_bytes_per_s},
            {"expected_downtime_ms", p.expected_downtime_ms},
            {"throttle_percent", p.throttle_percent}};
}

nlohmann::ordered_json to_json(const MigrationStatus& s) {
    return {{"state", s.state},       {"destination", s.destination}, {"live", s.live},
            {"progress", s.progress}, {"report", s.report},           {"error", s.error}};
}

MigrationStatus migration_status_from_json(const nlohmann::json& doc) {
    try {
        MigrationStatus s;
        s.state = doc.at("state").get<std::string>();
        if (s.state != "none" && s.state != "starting" && s.state != "running" &&
            s.state != "completed" && s.state != "failed" && s.state != "cancelled") {
            throw Error(ErrorCode::invalid_input, "bad migration status: unknown state");
        }
        s.destination = doc.value("destination", std::string());
        s.live = doc.value("live", true);
        s.progress = doc.value("progress", nlohmann::ordered_json());
        s.report = doc.value("report", nlohmann::ordered_json());
        if (!(s.progress.is_null() || s.progress.is_object()) ||
            !(s.report.is_null() || s.report.is_object())) {
            throw Error(ErrorCode::invalid_input,
                        "bad migration status: progress and report must be objects");
        }
        s.error = doc.value("error", std::string());
        return s;
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorCode::invalid_input, std::string("bad migration status: ") + e.what());
    }
}

MigrationStatus parse_migration_status(std::string_view text, const std::string& source) {
    if (text.size() > max_migration_status_bytes) {
        throw Error(ErrorCode::invalid_input, source + " is too large for a migration status");
    }
    auto doc = nlohmann::json::parse(text, nullptr, false);
    if (!doc.is_object()) {
        throw Error(ErrorCode::invalid_input, source + " is not a migration status");
    }
    return migration_status_from_json(doc);
}

void write_migration_status(const fs::path& file, const MigrationStatus& status) {
    fs::path temporary = file;
    temporary += ".tmp";
    {
        std::ofstream out(temporary, std::ios::trunc);
        out << to_json(status).dump() << '\n';
        if (!out.flush()) {
            throw Error(ErrorCode::io, "writing " + temporary.string());
        }
    }
    std::error_code ec;
    fs::rename(temporary, file, ec);
    if (ec) {
        throw Error(ErrorCode::io, fmt::format("renaming {} to {}: {}", temporary.string(),
                                               file.string(), ec.message()));
    }
}

MigrationStatus read_migration_status(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return {};
    }
    // The worker that writes it runs beside the guest: read no more than a status can be.
    std::string text(max_migration_status_bytes + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    return parse_migration_status(text, file.string());
}

} // namespace godwit::vmm
