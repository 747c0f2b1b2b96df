#include "godwit/vmm/guest_memory.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>

#include "godwit/error.hpp"

namespace godwit::vmm {

std::vector<RamRange> GuestMemory::pc_layout(std::uint64_t ram_size) {
    std::vector<RamRange> ranges;
    std::uint64_t low = std::min(ram_size, pci_hole_start);
    ranges.push_back({0, low, 0});
    if (ram_size > low) {
        ranges.push_back({high_ram_start, ram_size - low, low});
    }
    return ranges;
}

GuestMemory::GuestMemory(std::uint64_t ram_size) : ram_size_(ram_size) {
    if (ram_size == 0 || ram_size % page_size != 0) {
        throw Error(ErrorCode::invalid_input,
                    fmt::format("guest RAM size {} is not a non-zero multiple of 4 KiB", ram_size));
    }
    ranges_ = pc_layout(ram_size);
    // NORESERVE: a large, sparsely used guest does not commit host memory up front.
    void* p = ::mmap(nullptr, ram_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        throw system_error(fmt::format("mapping {} MiB of guest RAM", ram_size >> 20), errno);
    }
    host_ = static_cast<std::byte*>(p);
}

GuestMemory::~GuestMemory() {
    ::munmap(host_, ram_size_);
}

bool GuestMemory::contains(std::uint64_t gpa, std::uint64_t length) const {
    return std::any_of(ranges_.begin(), ranges_.end(), [&](const RamRange& r) {
        return gpa >= r.guest_base && length <= r.size && gpa - r.guest_base <= r.size - length;
    });
}

const RamRange& GuestMemory::range_for(std::uint64_t gpa, std::uint64_t length) const {
    for (const RamRange& r : ranges_) {
        if (gpa >= r.guest_base && length <= r.size && gpa - r.guest_base <= r.size - length) {
            return r;
        }
    }
    throw Error(ErrorCode::invalid_input,
                fmt::format("guest-physical range {:#x}+{:#x} is outside guest RAM", gpa, length));
}

std::span<std::byte> GuestMemory::host_span(std::uint64_t gpa, std::uint64_t length) {
    const RamRange& r = range_for(gpa, length);
    return {host_ + r.host_offset + (gpa - r.guest_base), length};
}

std::span<const std::byte> GuestMemory::host_span(std::uint64_t gpa, std::uint64_t length) const {
    const RamRange& r = range_for(gpa, length);
    return {host_ + r.host_offset + (gpa - r.guest_base), length};
}

void GuestMemory::adopt(std::uint64_t gpa, void* source, std::uint64_t length) {
    auto target = host_span(gpa, length);
    if (length == 0) {
        return;
    }
    if (reinterpret_cast<std::uintptr_t>(source) % page_size == 0 && length % page_size == 0 &&
        gpa % page_size == 0 &&
        ::mremap(source, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, target.data()) !=
            MAP_FAILED) {
        return;
    }
    std::memcpy(target.data(), source, length);
}

void GuestMemory::read(std::uint64_t gpa, std::span<std::byte> out) const {
    auto src = host_span(gpa, out.size());
    std::memcpy(out.data(), src.data(), out.size());
}

void GuestMemory::write(std::uint64_t gpa, std::span<const std::byte> data) {
    auto dst = host_span(gpa, data.size());
    std::memcpy(dst.data(), data.data(), data.size());
}

void GuestMemory::fill(std::uint64_t gpa, std::uint64_t length, std::byte value) {
    auto dst = host_span(gpa, length);
    std::memset(dst.data(), static_cast<int>(value), length);
}

} // namespace godwit::vmm
