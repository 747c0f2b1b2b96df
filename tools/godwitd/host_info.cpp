#include "host_info.hpp"

#include <unistd.h>

#include "godwit/version.hpp"
#include "hypervisor_device.hpp"

namespace godwit::daemon {

control::HostInfo read_host_info(const std::string& device_path) {
    HypervisorDevice device(device_path);
    control::HostInfo info;
    char hostname[256] = {};
    ::gethostname(hostname, sizeof hostname - 1);
    info.set_hostname(hostname);
    info.set_daemon_version(std::string(version()));

    godwit_hc_version v = device.version();
    info.set_abi_major(v.abi_version >> 16);
    info.set_abi_minor(v.abi_version & 0xffff);
    info.set_hypervisor_build(v.build);
    info.set_cpu_count(v.cpu_count);
    info.set_vmx_basic(v.vmx_basic);
    for (const auto& name : vmx_feature_names(v.vmx_features)) {
        info.add_vmx_features(name);
    }
    for (const godwit_hc_cpu& c : device.cpus()) {
        control::Cpu* cpu = info.add_cpus();
        cpu->set_index(c.index);
        cpu->set_apic_id(c.apic_id);
        cpu->set_online(c.flags & 1u);
        cpu->set_vmx_on(c.flags & 2u);
        cpu->set_runs_root(c.flags & 4u);
        cpu->set_exits(c.exits);
    }
    godwit_hc_memory_stats m = device.memory_stats();
    info.set_memory_total_bytes(m.total_bytes);
    info.set_memory_hypervisor_bytes(m.hypervisor_bytes);
    info.set_memory_hypervisor_free_bytes(m.hypervisor_free_bytes);
    info.set_memory_root_bytes(m.root_bytes);
    info.set_memory_guest_bytes(m.guest_bytes);
    return info;
}

} // namespace godwit::daemon
