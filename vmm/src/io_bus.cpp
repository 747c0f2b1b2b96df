#include "godwit/vmm/io_bus.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "godwit/error.hpp"

namespace godwit::vmm {

void IoBus::add(std::uint64_t base, std::uint64_t length, std::shared_ptr<IoDevice> device) {
    if (length == 0 || base + length < base) {
        throw Error(ErrorCode::invalid_input, fmt::format("{} bus: bad range {:#x}+{:#x} for {}",
                                                          name_, base, length, device->name()));
    }
    for (const Range& r : ranges_) {
        if (base < r.base + r.length && r.base < base + length) {
            throw Error(ErrorCode::conflict,
                        fmt::format("{} bus: {} at {:#x}+{:#x} overlaps {} at {:#x}+{:#x}", name_,
                                    device->name(), base, length, r.device->name(), r.base,
                                    r.length));
        }
    }
    auto pos = std::lower_bound(ranges_.begin(), ranges_.end(), base,
                                [](const Range& r, std::uint64_t b) { return r.base < b; });
    ranges_.insert(pos, Range{base, length, std::move(device)});
}

IoDevice* IoBus::find(std::uint64_t address) const {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), address,
                               [](std::uint64_t a, const Range& r) { return a < r.base; });
    if (it == ranges_.begin()) {
        return nullptr;
    }
    --it;
    return address - it->base < it->length ? it->device.get() : nullptr;
}

bool IoBus::dispatch(IoAccess& access) {
    if (access.size != 1 && access.size != 2 && access.size != 4 && access.size != 8) {
        throw Error(ErrorCode::invalid_input, fmt::format("{} bus: access of {} bytes at {:#x}",
                                                          name_, access.size, access.address));
    }
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), access.address,
                               [](std::uint64_t a, const Range& r) { return a < r.base; });
    if (it != ranges_.begin()) {
        --it;
        // The whole access must fall inside the claimed range (an access straddling two
        // devices is treated as unclaimed, like a bus with no decoder for it).
        std::uint64_t offset = access.address - it->base;
        if (offset < it->length && access.size <= it->length - offset) {
            if (access.is_write) {
                it->device->write(offset, access.size, access.data & all_ones(access.size));
            } else {
                access.data = it->device->read(offset, access.size) & all_ones(access.size);
            }
            return true;
        }
    }
    if (!access.is_write) {
        access.data = all_ones(access.size);
    }
    return false;
}

} // namespace godwit::vmm
