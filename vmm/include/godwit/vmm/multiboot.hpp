// Guest loaders for Multiboot kernels: Multiboot 0.6.96 ("Multiboot1": ELF or a.out-kludge
// header) and Multiboot2 2.0 (ELF or address tag), i386 32-bit protected-mode entry.
//
// Guest-physical layout the loaders produce:
//   0x8000  GDT (null, flat 32-bit code 0x08, flat 32-bit data 0x10) the entry state uses
//   0x9000  boot information (Multiboot1 info struct or Multiboot2 tag list), its memory
//           map, module list and strings; everything up to 0x9F000 may be used
//   kernel  at its ELF physical addresses (or the a.out-kludge / address-tag addresses)
//   modules page-aligned, one after the other, after the kernel's highest byte
// The memory map (memory_map()) reports [0, 0x9FC00) and RAM above 1 MiB as available and
// the EBDA and BIOS/ACPI area as reserved.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "godwit/vmm/vcpu_state.hpp"

namespace godwit::vmm {

class GuestMemory;

enum class KernelFormat { multiboot1, multiboot2, unknown };
std::string_view to_string(KernelFormat format);
// Multiboot2 is preferred when an image carries both headers, as GRUB does.
KernelFormat detect_kernel_format(std::span<const std::uint8_t> image);

struct BootModule {
    std::vector<std::uint8_t> contents;
    std::string cmdline;
};

struct BootImage {
    std::span<const std::uint8_t> kernel;
    std::string cmdline;
    std::vector<BootModule> modules;
    std::vector<std::uint8_t> acpi_rsdp; // copied into the Multiboot2 ACPI tag when given
};

struct MemoryMapEntry {
    std::uint64_t address, length;
    std::uint32_t type; // 1 available, 2 reserved (e820 / Multiboot types)
};
std::vector<MemoryMapEntry> memory_map(const GuestMemory& memory);

struct LoadedGuest {
    VcpuState bsp; // initial state of vCPU 0 (the entry state of the Multiboot spec)
    std::uint64_t info_address = 0;
    std::uint64_t kernel_start = 0, kernel_end = 0; // lowest and highest+1 loaded byte
    struct Module {
        std::uint64_t start, end;
    };
    std::vector<Module> modules;
};

inline constexpr std::uint32_t multiboot1_header_magic = 0x1BADB002;
inline constexpr std::uint32_t multiboot1_boot_magic = 0x2BADB002;
inline constexpr std::uint32_t multiboot2_header_magic = 0xE85250D6;
inline constexpr std::uint32_t multiboot2_boot_magic = 0x36d76289;
inline constexpr std::uint64_t boot_gdt_address = 0x8000;
inline constexpr std::uint64_t boot_info_address = 0x9000;
inline constexpr std::uint64_t boot_info_end = 0x9F000;

// Both throw invalid_input for a malformed image, unsupported for a valid image asking for
// something this loader does not provide (video mode, EFI, 64-bit entry).
LoadedGuest load_multiboot1(GuestMemory& memory, const BootImage& image);
LoadedGuest load_multiboot2(GuestMemory& memory, const BootImage& image);
// Detects the format and loads; unknown formats throw unsupported.
LoadedGuest load_kernel(GuestMemory& memory, const BootImage& image);

} // namespace godwit::vmm
