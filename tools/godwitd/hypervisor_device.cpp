#include "hypervisor_device.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "godwit/error.hpp"

namespace godwit::daemon {

HypervisorDevice::HypervisorDevice(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0) {
        int err = errno;
        if (err == ENOENT || err == ENODEV || err == ENXIO) {
            throw Error(ErrorCode::unsupported,
                        path + " does not exist: this host is not running the Godwit "
                               "hypervisor, or the root driver godwit.ko is not loaded "
                               "(see `dmesg | grep godwit`)");
        }
        throw system_error("open " + path, err);
    }
}

HypervisorDevice::~HypervisorDevice() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

void HypervisorDevice::ioctl_or_throw(unsigned long request, void* arg, const char* what) const {
    if (::ioctl(fd_, request, arg) != 0) {
        throw system_error(std::string(what) + " on " + path_, errno);
    }
}

godwit_hc_version HypervisorDevice::version() const {
    godwit_hc_version v{};
    ioctl_or_throw(GODWIT_IOCTL_VERSION, &v, "GODWIT_IOCTL_VERSION");
    v.build[sizeof v.build - 1] = '\0'; // never trust the terminator
    return v;
}

std::vector<godwit_hc_cpu> HypervisorDevice::cpus() const {
    std::vector<godwit_hc_cpu> list(64);
    for (;;) {
        godwit_ioctl_buffer req{};
        req.user_ptr = reinterpret_cast<godwit_u64>(list.data());
        req.size = static_cast<godwit_u32>(list.size() * sizeof(godwit_hc_cpu));
        ioctl_or_throw(GODWIT_IOCTL_CPU_LIST, &req, "GODWIT_IOCTL_CPU_LIST");
        if (req.result <= list.size()) {
            list.resize(req.result);
            return list;
        }
        if (req.result > 4096) {
            throw Error(ErrorCode::protocol,
                        "hypervisor reports " + std::to_string(req.result) + " CPUs");
        }
        list.resize(req.result); // buffer was too small: ask again with room for all
    }
}

godwit_hc_memory_stats HypervisorDevice::memory_stats() const {
    godwit_hc_memory_stats m{};
    ioctl_or_throw(GODWIT_IOCTL_MEMORY_STATS, &m, "GODWIT_IOCTL_MEMORY_STATS");
    return m;
}

std::string HypervisorDevice::console(std::uint64_t from, std::uint64_t& start,
                                      std::uint64_t& end) const {
    std::vector<char> buffer(sizeof(godwit_hc_console_chunk) + GODWIT_HC_CONSOLE_READ_MAX);
    std::string text;
    std::uint64_t position = from;
    start = from;
    for (int round = 0;; ++round) {
        godwit_ioctl_buffer req{};
        req.user_ptr = reinterpret_cast<godwit_u64>(buffer.data());
        req.size = static_cast<godwit_u32>(buffer.size());
        req.position = position;
        ioctl_or_throw(GODWIT_IOCTL_CONSOLE_READ, &req, "GODWIT_IOCTL_CONSOLE_READ");
        godwit_hc_console_chunk chunk{};
        std::memcpy(&chunk, buffer.data(), sizeof chunk);
        if (req.result > GODWIT_HC_CONSOLE_READ_MAX || chunk.start < position ||
            chunk.start + req.result > chunk.end_of_log) {
            throw Error(ErrorCode::protocol, "hypervisor returned an inconsistent console chunk");
        }
        if (round == 0) {
            start = chunk.start;
        } else if (chunk.start != position) {
            start = chunk.start; // the ring overtook us between calls: keep the newest
            text.clear();
        }
        text.append(buffer.data() + sizeof chunk, req.result);
        position = chunk.start + req.result;
        end = chunk.end_of_log;
        if (req.result == 0 || position >= end || round > 16) {
            return text;
        }
    }
}

std::vector<std::string> vmx_feature_names(godwit_u64 features) {
    static constexpr std::pair<godwit_u64, const char*> names[] = {
        {GODWIT_VMX_EPT, "ept"},
        {GODWIT_VMX_VPID, "vpid"},
        {GODWIT_VMX_UNRESTRICTED_GUEST, "unrestricted_guest"},
        {GODWIT_VMX_EPT_AD, "ept_accessed_dirty"},
        {GODWIT_VMX_PML, "pml"},
        {GODWIT_VMX_PREEMPTION_TIMER, "preemption_timer"},
        {GODWIT_VMX_EPT_1G, "ept_1g_pages"},
        {GODWIT_VMX_EPT_2M, "ept_2m_pages"},
        {GODWIT_VMX_X2APIC, "x2apic"},
    };
    std::vector<std::string> out;
    for (auto [bit, name] : names) {
        if (features & bit) {
            out.emplace_back(name);
        }
    }
    return out;
}

} // namespace godwit::daemon
