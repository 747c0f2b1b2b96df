// The directory where godwitd keeps VM definitions: one "<name>.json" per VM
// (docs/vm-definition.md). Writes are atomic (temporary file, fsync, rename), so a crash
// leaves either the old or the new definition, never half of one.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "godwit/vmm/vm_definition.hpp"

namespace godwit::vmm {

class VmDefinitionStore {
  public:
    // Creates the directory if needed.
    explicit VmDefinitionStore(std::filesystem::path directory);

    // Validates against the host (with the store's names as the existing ones) and stores it.
    // Throws conflict for a name already stored.
    KernelFormat create(const VmDefinition& definition, std::uint64_t free_memory_mib);
    VmDefinition get(const std::string& name) const; // not_found if absent
    std::vector<VmDefinition> list() const;          // sorted by name
    std::vector<std::string> names() const;          // sorted
    void remove(const std::string& name);            // not_found if absent

  private:
    std::filesystem::path path_for(const std::string& name) const;
    std::filesystem::path directory_;
};

} // namespace godwit::vmm
