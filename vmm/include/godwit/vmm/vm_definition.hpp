// VM definition files (docs/vm-definition.md): one JSON document per VM, stored by godwitd.
//   {"schema": 1, "name": "web1", "vcpus": 2, "memory_mib": 512,
//    "kernel": "/srv/kernels/guest.elf", "cmdline": "console=ttyS0",
//    "modules": [{"path": "/srv/initrd", "cmdline": "initrd"}], "disks": []}
// Parsing checks types and ranges; validation checks the definition against the host
// (files exist, kernel is Multiboot, memory is free, name is unused).
#pragma once

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "godwit/vmm/multiboot.hpp"

namespace godwit::vmm {

struct ModuleDefinition {
    std::string path;
    std::string cmdline;
    bool operator==(const ModuleDefinition&) const = default;
};

struct VmDefinition {
    static constexpr int schema_version = 1;
    static constexpr unsigned max_vcpus = 254; // xAPIC IDs 0..253; the IOAPIC takes the next
    static constexpr std::uint64_t min_memory_mib = 2;
    static constexpr std::uint64_t max_memory_mib = 1u << 20; // 1 TiB

    std::string name;
    unsigned vcpus = 1;
    std::uint64_t memory_mib = 0;
    std::string kernel;
    std::string cmdline;
    std::vector<ModuleDefinition> modules;
    // Disks arrive with the storage work; the schema reserves the key and requires [].
    bool operator==(const VmDefinition&) const = default;
};

// Throws invalid_input naming the source and the offending key.
VmDefinition parse_vm_definition(const std::string& json_text, const std::string& source);
VmDefinition load_vm_definition(const std::filesystem::path& path);
std::string vm_definition_to_json(const VmDefinition& definition); // pretty, stable key order
bool is_valid_vm_name(const std::string& name);

struct HostResources {
    std::uint64_t free_memory_mib = 0;
    std::set<std::string> existing_names;
};

// Host-side checks before a VM is created or started. Returns the kernel's format.
// Errors: conflict (name in use, not enough free memory), not_found (kernel/module missing),
// unsupported (kernel not Multiboot1/2), io (unreadable file).
KernelFormat validate_vm_definition(const VmDefinition& definition, const HostResources& host);

} // namespace godwit::vmm
