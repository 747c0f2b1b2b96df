#include "godwit/vmm/vm_definition_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include <fmt/format.h>

#include "godwit/error.hpp"

namespace godwit::vmm {

namespace {
constexpr const char* suffix = ".json";

void write_atomically(const std::filesystem::path& path, const std::string& contents) {
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        throw system_error(fmt::format("creating {}", tmp.string()), errno);
    }
    std::size_t done = 0;
    while (done < contents.size()) {
        ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            throw system_error(fmt::format("writing {}", tmp.string()), err);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
        int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        throw system_error(fmt::format("syncing {}", tmp.string()), err);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw system_error(fmt::format("renaming {} to {}", tmp.string(), path.string()), err);
    }
}
} // namespace

VmDefinitionStore::VmDefinitionStore(std::filesystem::path directory)
    : directory_(std::move(directory)) {
    std::error_code ec;
    std::filesystem::create_directories(directory_, ec);
    if (ec) {
        throw Error(ErrorCode::io, fmt::format("creating VM definition directory {}: {}",
                                               directory_.string(), ec.message()));
    }
}

std::filesystem::path VmDefinitionStore::path_for(const std::string& name) const {
    if (!is_valid_vm_name(name)) {
        throw Error(ErrorCode::invalid_input, fmt::format("'{}' is not a valid VM name", name));
    }
    return directory_ / (name + suffix);
}

std::vector<std::string> VmDefinitionStore::names() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(directory_, ec)) {
        std::string file = entry.path().filename().string();
        if (entry.is_regular_file() && file.ends_with(suffix)) {
            std::string name = file.substr(0, file.size() - std::string_view(suffix).size());
            if (is_valid_vm_name(name)) {
                out.push_back(name);
            }
        }
    }
    if (ec) {
        throw Error(ErrorCode::io, fmt::format("listing VM definitions in {}: {}",
                                               directory_.string(), ec.message()));
    }
    std::sort(out.begin(), out.end());
    return out;
}

KernelFormat VmDefinitionStore::create(const VmDefinition& definition,
                                       std::uint64_t free_memory_mib) {
    auto existing = names();
    HostResources host{free_memory_mib, {existing.begin(), existing.end()}};
    KernelFormat format = validate_vm_definition(definition, host);
    write_atomically(path_for(definition.name), vm_definition_to_json(definition));
    return format;
}

VmDefinition VmDefinitionStore::get(const std::string& name) const {
    std::filesystem::path path = path_for(name);
    if (!std::filesystem::exists(path)) {
        throw Error(ErrorCode::not_found, fmt::format("no VM named '{}'", name));
    }
    VmDefinition d = load_vm_definition(path);
    if (d.name != name) {
        throw Error(ErrorCode::invalid_input,
                    fmt::format("{} defines VM '{}', not '{}'", path.string(), d.name, name));
    }
    return d;
}

std::vector<VmDefinition> VmDefinitionStore::list() const {
    std::vector<VmDefinition> out;
    for (const std::string& name : names()) {
        out.push_back(get(name));
    }
    return out;
}

void VmDefinitionStore::remove(const std::string& name) {
    std::filesystem::path path = path_for(name);
    if (::unlink(path.c_str()) != 0) {
        if (errno == ENOENT) {
            throw Error(ErrorCode::not_found, fmt::format("no VM named '{}'", name));
        }
        throw system_error(fmt::format("removing {}", path.string()), errno);
    }
}

} // namespace godwit::vmm
