// What the migration engine needs from a VM. The VMM implements these for real VMs (guest
// RAM, the hypervisor's dirty log, throttling through the preemption timer); tests use a
// synthetic guest. Nothing here assumes a hypervisor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace godwit::migration {

inline constexpr std::uint32_t page_size = 4096;

class GuestMemory {
  public:
    virtual ~GuestMemory() = default;
    virtual std::uint64_t page_count() const = 0;
    virtual void read_page(std::uint64_t pfn, std::uint8_t* out) const = 0;
    virtual void write_page(std::uint64_t pfn, const std::uint8_t* in) = 0;
};

class DirtyLog {
  public:
    virtual ~DirtyLog() = default;
    virtual void enable() = 0;
    virtual void disable() = 0;
    // Pages dirtied since the last call (or since enable()), one bit per page, and clears them.
    virtual void fetch_and_clear(std::vector<std::uint64_t>& bitmap) = 0;
};

class VmControl {
  public:
    virtual ~VmControl() = default;
    virtual void pause() = 0;
    virtual void resume() = 0;
    // Slows the vCPUs to (100 - percent)% of their time; 0 = full speed.
    virtual void set_throttle(unsigned percent) = 0;
};

struct StateBlob {
    std::string kind; // "vcpu" or "device"
    std::string id;
    std::vector<std::uint8_t> data;
};

class StateProvider {
  public:
    virtual ~StateProvider() = default;
    virtual std::vector<StateBlob> save_state() = 0; // called with the VM paused
    virtual void restore_state(const std::vector<StateBlob>& blobs) = 0;
};

} // namespace godwit::migration
