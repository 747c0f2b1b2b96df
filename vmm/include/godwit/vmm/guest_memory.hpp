// Guest-physical memory of one VM: RAM ranges backed by one contiguous host mapping, and
// holes (MMIO, the PCI hole below 4 GiB) where nothing is backed. Every access is checked:
// an access that leaves RAM throws godwit::Error (invalid_input) rather than touching host
// memory, which is also what stops a VM that touches memory outside its RAM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace godwit::vmm {

inline constexpr std::uint64_t page_size = 4096;

struct RamRange {
    std::uint64_t guest_base = 0;
    std::uint64_t size = 0;
    std::uint64_t host_offset = 0; // offset of guest_base in the host mapping
    std::uint64_t end() const { return guest_base + size; }
};

class GuestMemory {
  public:
    // PC layout: RAM from 0 up to pci_hole_start (3 GiB), the rest relocated above 4 GiB.
    static constexpr std::uint64_t pci_hole_start = 0xC000'0000;
    static constexpr std::uint64_t high_ram_start = 0x1'0000'0000;
    static std::vector<RamRange> pc_layout(std::uint64_t ram_size);

    // ram_size must be a non-zero multiple of 4 KiB.
    explicit GuestMemory(std::uint64_t ram_size);
    ~GuestMemory();
    GuestMemory(const GuestMemory&) = delete;
    GuestMemory& operator=(const GuestMemory&) = delete;

    std::uint64_t ram_size() const { return ram_size_; }
    const std::vector<RamRange>& ranges() const { return ranges_; }
    // Whether [gpa, gpa + length) lies inside one RAM range.
    bool contains(std::uint64_t gpa, std::uint64_t length) const;

    void read(std::uint64_t gpa, std::span<std::byte> out) const;
    void write(std::uint64_t gpa, std::span<const std::byte> data);
    void fill(std::uint64_t gpa, std::uint64_t length, std::byte value);
    // Makes the `length` bytes at `source` (page-aligned, from an anonymous private mmap) the
    // contents of [gpa, gpa + length), one RAM range: the pages are moved (mremap), not
    // copied, and `source` is left unmapped. Falls back to a copy where the kernel refuses.
    // A migrated VM's memory, received before its layout was known, costs no copy in the
    // downtime (16 MiB took 761 ms to copy in an emulated host; a large VM, seconds).
    void adopt(std::uint64_t gpa, void* source, std::uint64_t length);
    // Host view of [gpa, gpa + length); the range must lie inside one RAM range.
    std::span<std::byte> host_span(std::uint64_t gpa, std::uint64_t length);
    std::span<const std::byte> host_span(std::uint64_t gpa, std::uint64_t length) const;

    template <typename T>
    T read_value(std::uint64_t gpa) const {
        T v;
        read(gpa, std::as_writable_bytes(std::span{&v, 1}));
        return v;
    }
    template <typename T>
    void write_value(std::uint64_t gpa, const T& v) {
        write(gpa, std::as_bytes(std::span{&v, 1}));
    }

  private:
    const RamRange& range_for(std::uint64_t gpa, std::uint64_t length) const;

    std::uint64_t ram_size_;
    std::vector<RamRange> ranges_;
    std::byte* host_ = nullptr;
};

} // namespace godwit::vmm
