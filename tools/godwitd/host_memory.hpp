// How much memory the root partition can give a new VM: /proc/meminfo's MemAvailable
// (the kernel's estimate of what can be allocated without swapping), less the reserve the
// operator keeps for the root itself, capped by the hypervisor's per-partition limit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace godwit::daemon {

// The hypercall ABI's limit on one partition's RAM (GODWIT_HC_PARTITION_CREATE: <= 4 GiB).
inline constexpr std::uint64_t partition_memory_limit_mib = 4096;

// MemAvailable in MiB from the text of /proc/meminfo; nullopt when the line is missing.
std::optional<std::uint64_t> parse_mem_available_mib(const std::string& meminfo);
// Reads /proc/meminfo. Throws Error(io) when it cannot be read or has no MemAvailable.
std::uint64_t read_mem_available_mib(const std::string& path = "/proc/meminfo");

} // namespace godwit::daemon
