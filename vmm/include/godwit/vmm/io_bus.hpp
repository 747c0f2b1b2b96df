// Port-I/O and MMIO dispatch: devices claim address ranges; an access record from a VM exit
// is routed to the device that claims it. Unclaimed reads return all-ones (an empty ISA/PCI
// bus floats high), unclaimed writes are dropped.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace godwit::vmm {

// One guest access as the hypervisor reports it in an I/O exit record.
struct IoAccess {
    std::uint64_t address = 0; // port number or guest-physical address
    std::uint8_t size = 1;     // bytes: 1, 2, 4 or 8
    bool is_write = false;
    std::uint64_t data = 0; // value written, or filled in with the value read
};

// A device model. Offsets are relative to the base of the range the device was added at.
class IoDevice {
  public:
    virtual ~IoDevice() = default;
    virtual std::string_view name() const = 0;
    virtual std::uint64_t read(std::uint64_t offset, unsigned size) = 0;
    virtual void write(std::uint64_t offset, unsigned size, std::uint64_t value) = 0;
};

// All-ones of an access of size bytes.
constexpr std::uint64_t all_ones(unsigned size) {
    return size >= 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (8 * size)) - 1;
}

class IoBus {
  public:
    explicit IoBus(std::string name) : name_(std::move(name)) {}

    // Claims [base, base + length) for device; overlapping an existing range throws conflict.
    void add(std::uint64_t base, std::uint64_t length, std::shared_ptr<IoDevice> device);
    // Routes one access; returns whether a device claimed it. Reads fill access.data.
    bool dispatch(IoAccess& access);
    // The device claiming address, or nullptr.
    IoDevice* find(std::uint64_t address) const;

  private:
    struct Range {
        std::uint64_t base, length;
        std::shared_ptr<IoDevice> device;
    };
    std::string name_;
    std::vector<Range> ranges_; // sorted by base
};

} // namespace godwit::vmm
