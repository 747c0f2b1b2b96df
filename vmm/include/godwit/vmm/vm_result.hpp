// How one run of a VM ended, as its worker process (godwit-vm-worker) reports it to godwitd:
// a small JSON file written once, atomically, when the VM stops (docs/vm-management.md):
//   {"kind": "debug_exit", "exit_code": 0, "address": 0, "error_code": 0,
//    "message": "guest wrote 0 to the debug-exit port (result 1)"}
// godwitd writes the same file itself for ends the worker cannot report (killed, crashed).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "godwit/vmm/vm_platform.hpp"

namespace godwit::vmm {

struct VmResult {
    enum class Kind {
        debug_exit,  // the guest wrote exit_code to the debug-exit port
        power_off,   // ACPI S5
        outside_ram, // isolation stop: the guest touched `address`, outside RAM and devices
        shutdown,    // triple fault
        stopped,     // stopped on request (godwit vm stop)
        killed,      // the worker was killed (godwit vm kill, or stop's escalation)
        failed,      // the worker or the VMM failed; `message` says why, `error_code` how
    };
    Kind kind = Kind::failed;
    std::uint32_t exit_code = 0; // debug_exit: the value the guest wrote
    std::uint64_t address = 0;   // outside_ram: the guest-physical address
    int error_code = 0;          // failed: the godwit::ErrorCode, 0 when none applies
    std::string message;         // one line for operators

    // A run that ended the way a guest means to end: debug exit 0, power-off, or stopped.
    bool clean() const;
    static VmResult from_stop(const VmStop& stop);
    bool operator==(const VmResult&) const = default;
};

std::string_view to_string(VmResult::Kind kind);
std::optional<VmResult::Kind> vm_result_kind_from_string(std::string_view text);

std::string vm_result_to_json(const VmResult& result); // one line, stable key order
// Throws invalid_input naming `source` for anything that is not such a document.
VmResult parse_vm_result(const std::string& text, const std::string& source);
// Written atomically (temporary file + rename) so a reader never sees half a result.
void write_vm_result(const std::filesystem::path& path, const VmResult& result);
// nullopt when the file does not exist.
std::optional<VmResult> read_vm_result(const std::filesystem::path& path);

} // namespace godwit::vmm
