#include "godwit/vmm/vm_definition.hpp"

#include <cerrno>
#include <fstream>
#include <iterator>
#include <regex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "godwit/error.hpp"

namespace godwit::vmm {

namespace {

using nlohmann::json;

[[noreturn]] void invalid(const std::string& source, const std::string& what) {
    throw Error(ErrorCode::invalid_input, fmt::format("VM definition {}: {}", source, what));
}

std::uint64_t unsigned_field(const json& doc, const char* key, std::uint64_t min, std::uint64_t max,
                             const std::string& source) {
    const json& v = doc.at(key);
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0)) {
        invalid(source, fmt::format("\"{}\" must be a whole number", key));
    }
    std::uint64_t n = v.get<std::uint64_t>();
    if (n < min || n > max) {
        invalid(source, fmt::format("\"{}\" is {}, must be {}..{}", key, n, min, max));
    }
    return n;
}

std::string string_field(const json& doc, const char* key, const std::string& source) {
    const json& v = doc.at(key);
    if (!v.is_string()) {
        invalid(source, fmt::format("\"{}\" must be a string", key));
    }
    return v.get<std::string>();
}

std::vector<std::uint8_t> read_file(const std::filesystem::path& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        int err = errno;
        if (!std::filesystem::exists(path)) {
            throw Error(ErrorCode::not_found,
                        fmt::format("{} {} does not exist", what, path.string()));
        }
        throw system_error(fmt::format("opening {} {}", what, path.string()), err);
    }
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

} // namespace

bool is_valid_vm_name(const std::string& name) {
    static const std::regex pattern("[A-Za-z0-9][A-Za-z0-9._-]{0,62}");
    return std::regex_match(name, pattern);
}

namespace {

VmDefinition parse_document(const std::string& json_text, const std::string& source) {
    json doc;
    try {
        doc = json::parse(json_text);
    } catch (const json::exception& e) {
        // parse_error, and out_of_range for numbers no integer type holds.
        invalid(source, fmt::format("not valid JSON ({})", e.what()));
    }
    if (!doc.is_object()) {
        invalid(source, "the document must be a JSON object");
    }
    static const std::set<std::string> known = {"schema", "name",    "vcpus",   "memory_mib",
                                                "kernel", "cmdline", "modules", "disks"};
    for (const auto& [key, value] : doc.items()) {
        if (!known.contains(key)) {
            invalid(source, fmt::format("unknown key \"{}\"", key));
        }
    }
    for (const char* key : {"schema", "name", "memory_mib", "kernel"}) {
        if (!doc.contains(key)) {
            invalid(source, fmt::format("required key \"{}\" is missing", key));
        }
    }
    if (unsigned_field(doc, "schema", 0, ~std::uint64_t{0}, source) !=
        VmDefinition::schema_version) {
        throw Error(ErrorCode::unsupported,
                    fmt::format("VM definition {}: schema {} (this Godwit reads schema {})", source,
                                doc.at("schema").dump(), VmDefinition::schema_version));
    }
    VmDefinition d;
    d.name = string_field(doc, "name", source);
    if (!is_valid_vm_name(d.name)) {
        invalid(source, fmt::format("name \"{}\" must be 1-63 letters, digits, '.', '_' or '-', "
                                    "starting with a letter or digit",
                                    d.name));
    }
    if (doc.contains("vcpus")) {
        d.vcpus =
            static_cast<unsigned>(unsigned_field(doc, "vcpus", 1, VmDefinition::max_vcpus, source));
    }
    d.memory_mib = unsigned_field(doc, "memory_mib", VmDefinition::min_memory_mib,
                                  VmDefinition::max_memory_mib, source);
    d.kernel = string_field(doc, "kernel", source);
    if (d.kernel.empty()) {
        invalid(source, "\"kernel\" must name a file");
    }
    if (doc.contains("cmdline")) {
        d.cmdline = string_field(doc, "cmdline", source);
    }
    if (doc.contains("modules")) {
        const json& modules = doc.at("modules");
        if (!modules.is_array()) {
            invalid(source, "\"modules\" must be an array");
        }
        for (std::size_t i = 0; i < modules.size(); ++i) {
            const json& m = modules[i];
            std::string where = fmt::format("{} modules[{}]", source, i);
            if (!m.is_object() || !m.contains("path")) {
                invalid(where, "each module must be an object with \"path\"");
            }
            for (const auto& [key, value] : m.items()) {
                if (key != "path" && key != "cmdline") {
                    invalid(where, fmt::format("unknown key \"{}\"", key));
                }
            }
            ModuleDefinition md{string_field(m, "path", where), ""};
            if (m.contains("cmdline")) {
                md.cmdline = string_field(m, "cmdline", where);
            }
            d.modules.push_back(std::move(md));
        }
    }
    if (doc.contains("disks")) {
        if (!doc.at("disks").is_array()) {
            invalid(source, "\"disks\" must be an array");
        }
        if (!doc.at("disks").empty()) {
            throw Error(ErrorCode::unsupported,
                        fmt::format("VM definition {}: disks are not supported yet (\"disks\" "
                                    "must be [])",
                                    source));
        }
    }
    return d;
}

} // namespace

VmDefinition parse_vm_definition(const std::string& json_text, const std::string& source) {
    try {
        return parse_document(json_text, source);
    } catch (const nlohmann::json::exception& e) {
        // A type or range surprise the checks in parse_document did not anticipate.
        invalid(source, fmt::format("malformed ({})", e.what()));
    }
}

VmDefinition load_vm_definition(const std::filesystem::path& path) {
    auto bytes = read_file(path, "VM definition");
    return parse_vm_definition(std::string(bytes.begin(), bytes.end()), path.string());
}

std::string vm_definition_to_json(const VmDefinition& d) {
    nlohmann::ordered_json doc;
    doc["schema"] = VmDefinition::schema_version;
    doc["name"] = d.name;
    doc["vcpus"] = d.vcpus;
    doc["memory_mib"] = d.memory_mib;
    doc["kernel"] = d.kernel;
    doc["cmdline"] = d.cmdline;
    doc["modules"] = nlohmann::ordered_json::array();
    for (const ModuleDefinition& m : d.modules) {
        doc["modules"].push_back({{"path", m.path}, {"cmdline", m.cmdline}});
    }
    doc["disks"] = nlohmann::ordered_json::array();
    return doc.dump(2) + "\n";
}

KernelFormat validate_vm_definition(const VmDefinition& d, const HostResources& host) {
    if (host.existing_names.contains(d.name)) {
        throw Error(ErrorCode::conflict, fmt::format("a VM named '{}' already exists", d.name));
    }
    if (d.memory_mib > host.free_memory_mib) {
        throw Error(ErrorCode::conflict,
                    fmt::format("VM '{}' needs {} MiB of memory but only {} MiB are free", d.name,
                                d.memory_mib, host.free_memory_mib));
    }
    auto kernel = read_file(d.kernel, "kernel");
    KernelFormat format = detect_kernel_format(kernel);
    if (format == KernelFormat::unknown) {
        throw Error(ErrorCode::unsupported,
                    fmt::format("kernel {} of VM '{}' is not a Multiboot1 or Multiboot2 image "
                                "(no header in its first 8/32 KiB)",
                                d.kernel, d.name));
    }
    for (const ModuleDefinition& m : d.modules) {
        std::error_code ec;
        if (!std::filesystem::is_regular_file(m.path, ec)) {
            throw Error(ErrorCode::not_found,
                        fmt::format("module {} of VM '{}' does not exist", m.path, d.name));
        }
    }
    return format;
}

} // namespace godwit::vmm
