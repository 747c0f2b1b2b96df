#include "godwit/vmm/vm_result.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "godwit/error.hpp"

namespace godwit::vmm {

namespace {

constexpr std::pair<VmResult::Kind, std::string_view> kind_names[] = {
    {VmResult::Kind::debug_exit, "debug_exit"},   {VmResult::Kind::power_off, "power_off"},
    {VmResult::Kind::outside_ram, "outside_ram"}, {VmResult::Kind::shutdown, "shutdown"},
    {VmResult::Kind::stopped, "stopped"},         {VmResult::Kind::killed, "killed"},
    {VmResult::Kind::failed, "failed"},
};

// Results are one line in listings: newlines in an error message would break them.
std::string one_line(std::string text) {
    for (char& c : text) {
        if (c == '\n' || c == '\r') {
            c = ' ';
        }
    }
    return text;
}

} // namespace

std::string_view to_string(VmResult::Kind kind) {
    for (auto [k, name] : kind_names) {
        if (k == kind) {
            return name;
        }
    }
    return "failed";
}

std::optional<VmResult::Kind> vm_result_kind_from_string(std::string_view text) {
    for (auto [k, name] : kind_names) {
        if (name == text) {
            return k;
        }
    }
    return std::nullopt;
}

bool VmResult::clean() const {
    return (kind == Kind::debug_exit && exit_code == 0) || kind == Kind::power_off ||
           kind == Kind::stopped;
}

VmResult VmResult::from_stop(const VmStop& stop) {
    VmResult r;
    r.message = one_line(stop.describe());
    switch (stop.reason) {
    case VmStop::Reason::debug_exit:
        r.kind = Kind::debug_exit;
        r.exit_code = stop.result >> 1; // the port reports (value << 1) | 1
        break;
    case VmStop::Reason::power_off:
        r.kind = Kind::power_off;
        break;
    case VmStop::Reason::outside_ram:
        r.kind = Kind::outside_ram;
        r.address = stop.address;
        break;
    case VmStop::Reason::shutdown:
        r.kind = Kind::shutdown;
        break;
    case VmStop::Reason::requested:
        r.kind = Kind::stopped;
        break;
    case VmStop::Reason::failed:
        r.kind = Kind::failed;
        r.error_code = static_cast<int>(ErrorCode::failed);
        break;
    }
    return r;
}

std::string vm_result_to_json(const VmResult& r) {
    nlohmann::ordered_json doc;
    doc["kind"] = std::string(to_string(r.kind));
    doc["exit_code"] = r.exit_code;
    doc["address"] = r.address;
    doc["error_code"] = r.error_code;
    doc["message"] = one_line(r.message);
    // Replace invalid UTF-8 (a path in a message) rather than throwing while reporting.
    return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

VmResult parse_vm_result(const std::string& text, const std::string& source) {
    auto bad = [&](const std::string& what) {
        return Error(ErrorCode::invalid_input, fmt::format("VM result {}: {}", source, what));
    };
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw bad(fmt::format("not valid JSON ({})", e.what()));
    }
    if (!doc.is_object() || !doc.contains("kind") || !doc["kind"].is_string()) {
        throw bad("must be an object with a string \"kind\"");
    }
    auto kind = vm_result_kind_from_string(doc["kind"].get<std::string>());
    if (!kind) {
        throw bad(fmt::format("unknown kind \"{}\"", doc["kind"].get<std::string>()));
    }
    VmResult r;
    r.kind = *kind;
    // get<> converts between number types silently (-1 becomes 4294967295): check first.
    auto unsigned_field = [&](const char* key, std::uint64_t max) -> std::uint64_t {
        if (!doc.contains(key)) {
            return 0;
        }
        const auto& v = doc[key];
        if (!v.is_number_unsigned() || v.get<std::uint64_t>() > max) {
            throw bad(fmt::format("\"{}\" must be a whole number up to {}", key, max));
        }
        return v.get<std::uint64_t>();
    };
    r.exit_code = static_cast<std::uint32_t>(unsigned_field("exit_code", 0xFFFFFFFFu));
    r.address = unsigned_field("address", ~std::uint64_t{0});
    r.error_code = static_cast<int>(unsigned_field("error_code", 255));
    if (doc.contains("message")) {
        if (!doc["message"].is_string()) {
            throw bad("\"message\" must be a string");
        }
        r.message = one_line(doc["message"].get<std::string>());
    }
    return r;
}

void write_vm_result(const std::filesystem::path& path, const VmResult& result) {
    std::string text = vm_result_to_json(result);
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        throw system_error(fmt::format("creating {}", tmp.string()), errno);
    }
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        err = ok ? errno : err;
        ::unlink(tmp.c_str());
        throw system_error(fmt::format("writing {}", path.string()), err);
    }
}

std::optional<VmResult> read_vm_result(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (errno == ENOENT) {
            return std::nullopt;
        }
        throw system_error(fmt::format("opening {}", path.string()), errno);
    }
    std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    return parse_vm_result(text, path.string());
}

} // namespace godwit::vmm
