#include "godwit/csv/volume_registry.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "godwit/error.hpp"

namespace godwit::csv {
namespace {

using Json = nlohmann::ordered_json;
constexpr const char* kSuffix = ".json";

void check_name(const std::string& name) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
        name.size() > 63) {
        throw Error(ErrorCode::usage, "'" + name +
                                          "' cannot name a registered volume (1 to 63 "
                                          "bytes, no '/')");
    }
}

Json to_json(const RegisteredVolume& v) {
    Json j{{"name", v.name},
           {"device", v.device},
           {"node_id", v.node_id},
           {"members", v.members},
           {"plaintext", v.plaintext}};
    if (!v.plaintext) {
        j["tls"] = {{"ca", v.ca}, {"cert", v.cert}, {"key", v.key}};
    }
    j["mountpoint"] = v.mountpoint;
    j["lease_ms"] = v.lease_ms;
    j["map_lease_ms"] = v.map_lease_ms;
    return j;
}

RegisteredVolume from_json(const Json& j, const std::string& where) {
    try {
        RegisteredVolume v;
        v.name = j.at("name").get<std::string>();
        v.device = j.at("device").get<std::string>();
        v.node_id = j.at("node_id").get<std::uint64_t>();
        v.members = j.at("members").get<std::string>();
        v.plaintext = j.value("plaintext", false);
        if (!v.plaintext) {
            const Json& t = j.at("tls");
            v.ca = t.at("ca").get<std::string>();
            v.cert = t.at("cert").get<std::string>();
            v.key = t.at("key").get<std::string>();
        }
        v.mountpoint = j.value("mountpoint", std::string());
        v.lease_ms = j.value("lease_ms", 10000u);
        v.map_lease_ms = j.value("map_lease_ms", 3000u);
        return v;
    } catch (const Json::exception& e) {
        throw Error(ErrorCode::invalid_input,
                    where + ": not a registered volume (" + std::string(e.what()) + ")");
    }
}

} // namespace

std::filesystem::path VolumeRegistry::default_dir() {
    const char* env = std::getenv("GODWIT_CSV_REGISTRY");
    return env != nullptr && *env != '\0' ? std::filesystem::path(env)
                                          : std::filesystem::path("/etc/godwit/csv");
}

std::filesystem::path VolumeRegistry::file_of(const std::string& name) const {
    check_name(name);
    return dir_ / (name + kSuffix);
}

void VolumeRegistry::add(const RegisteredVolume& volume, bool replace) {
    const auto path = file_of(volume.name);
    if (volume.device.empty() || volume.node_id == 0 || volume.members.empty()) {
        throw Error(ErrorCode::usage,
                    "a registered volume needs its device, this node's id and the members");
    }
    if (!volume.plaintext && (volume.ca.empty() || volume.cert.empty() || volume.key.empty())) {
        throw Error(ErrorCode::usage, "a registered volume needs --ca, --cert and --key (or "
                                      "--plaintext, explicitly)");
    }
    std::error_code ec;
    if (!replace && std::filesystem::exists(path, ec)) {
        throw Error(ErrorCode::conflict, "volume '" + volume.name + "' is already registered (" +
                                             path.string() + "; `godwit csv remove " + volume.name +
                                             "` first, or --replace)");
    }
    std::filesystem::create_directories(dir_, ec);
    if (ec) {
        throw system_error("create " + dir_.string(), ec.value());
    }
    const auto tmp = path.string() + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << to_json(volume).dump(2) << '\n';
        out.flush();
        if (!out) {
            throw Error(ErrorCode::io, "write " + tmp + " failed");
        }
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::filesystem::remove(tmp, ec);
        throw system_error("rename to " + path.string(), ec.value());
    }
}

void VolumeRegistry::remove(const std::string& name) {
    const auto path = file_of(name);
    std::error_code ec;
    if (!std::filesystem::remove(path, ec)) {
        if (ec) {
            throw system_error("remove " + path.string(), ec.value());
        }
        throw Error(ErrorCode::not_found, "no registered volume '" + name + "'");
    }
}

std::optional<RegisteredVolume> VolumeRegistry::find(const std::string& name) const {
    const auto path = file_of(name);
    std::ifstream in(path);
    if (!in) {
        return std::nullopt;
    }
    Json j = Json::parse(in, nullptr, false);
    if (j.is_discarded()) {
        throw Error(ErrorCode::invalid_input, path.string() + ": not valid JSON");
    }
    RegisteredVolume v = from_json(j, path.string());
    if (v.name != name) {
        throw Error(ErrorCode::invalid_input,
                    path.string() + ": names volume '" + v.name + "', not '" + name + "'");
    }
    return v;
}

std::vector<RegisteredVolume> VolumeRegistry::list() const {
    std::vector<RegisteredVolume> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
        const auto& p = entry.path();
        if (p.extension() != kSuffix) {
            continue;
        }
        if (auto v = find(p.stem().string())) {
            out.push_back(std::move(*v));
        }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

} // namespace godwit::csv
