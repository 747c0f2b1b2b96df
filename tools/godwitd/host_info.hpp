// `godwit host info`: what the hypervisor says about this host, read through /dev/godwit.
#pragma once

#include <string>

#include "control.pb.h"

namespace godwit::daemon {

// Reads version, CPUs and memory with one hypercall each. Throws godwit::Error when the
// device is missing or a hypercall fails.
control::HostInfo read_host_info(const std::string& device_path);

} // namespace godwit::daemon
