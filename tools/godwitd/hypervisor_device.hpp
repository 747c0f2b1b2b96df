// godwitd's handle on /dev/godwit (the root driver): one method per ioctl, each one
// hypercall. Errors become godwit::Error with a message an operator can act on.
#pragma once

#include <string>
#include <vector>

#include "godwit_ioctl.h"

namespace godwit::daemon {

class HypervisorDevice {
  public:
    // Opens the device; Error(unsupported) when it does not exist (not a Godwit host or
    // godwit.ko not loaded), Error(io) for other failures.
    explicit HypervisorDevice(const std::string& path);
    ~HypervisorDevice();
    HypervisorDevice(const HypervisorDevice&) = delete;
    HypervisorDevice& operator=(const HypervisorDevice&) = delete;

    godwit_hc_version version() const;
    std::vector<godwit_hc_cpu> cpus() const;
    godwit_hc_memory_stats memory_stats() const;
    // Hypervisor console text from position `from` to the end of the log (in 64 KiB
    // hypercalls); `start` is where the returned text begins, `end` the log's end.
    std::string console(std::uint64_t from, std::uint64_t& start, std::uint64_t& end) const;

  private:
    void ioctl_or_throw(unsigned long request, void* arg, const char* what) const;
    std::string path_;
    int fd_ = -1;
};

// Names of the GODWIT_VMX_* bits set in `features`, e.g. {"ept", "vpid", "pml"}.
std::vector<std::string> vmx_feature_names(godwit_u64 features);

} // namespace godwit::daemon
