// The virtual IOAPIC of a guest partition (Intel 82093AA datasheet): 24 pins, the
// IOREGSEL/IOWIN register window at 0xFEC00000, redirection entries, edge and level pins
// with remote IRR, masking and EOI redelivery. Interrupts leave as ApicMessages through
// ApicBus; the partition forwards level-triggered EOIs back here with eoi().
// Model and limits: docs/virtual-interrupts.md.
#pragma once

#include "lib/types.hpp"
#include "partition/vlapic.hpp"

#include <type_traits>

namespace godwit::hv {

class VirtualIoapic {
  public:
    static constexpr u64 default_base = 0xFEC00000;
    static constexpr u32 pin_count = 24;
    static constexpr u32 version_value = 0x00170011; // version 0x11, max redirection entry 23
    static constexpr u32 ioregsel_offset = 0x00;
    static constexpr u32 iowin_offset = 0x10;

    // Every pin masked and edge-triggered, no line asserted; ID register = id << 24.
    void reset(u32 id);

    // offset in the 4 KiB page at default_base; aligned 32-bit accesses to IOREGSEL (0x00)
    // and IOWIN (0x10). Anything else reads 0 and ignores writes.
    u32 mmio_read(u32 offset) const;
    void mmio_write(u32 offset, u32 value, ApicBus& bus);

    // A device line (logical assertion; the polarity bit is the guest's description of
    // the wire and is kept, not applied). Edge pins deliver on the rising edge while
    // unmasked; level pins deliver while asserted, unmasked and remote IRR is clear.
    void set_irq(u32 pin, bool asserted, ApicBus& bus);
    // A level-triggered EOI for `vector` reached the IOAPIC: clear remote IRR of the level
    // pins with that vector, and deliver again if the line is still asserted.
    void eoi(u8 vector, ApicBus& bus);

    u64 redirection_entry(u32 pin) const { return pin < pin_count ? redirection_[pin] : 0; }

    struct State {
        u32 format; // state_format
        u32 size;   // sizeof(State)
        u32 id;     // ID register value (bits 27:24)
        u32 ioregsel;
        u32 lines;    // bit n: pin n asserted
        u32 reserved; // zero
        u64 redirection[pin_count];
    };
    static constexpr u32 state_format = 1;
    void save(State& out) const;
    bool restore(const State& in); // validates everything first; false = bad state

  private:
    static constexpr u64 redirection_writable = 0xFF00'0000'0001'AFFFull;
    void deliver(u32 pin, ApicBus& bus);
    void write_redirection(u32 pin, bool high, u32 value, ApicBus& bus);

    u32 id_ = 0;
    u32 ioregsel_ = 0;
    u32 lines_ = 0;
    u64 redirection_[pin_count] = {};
};

static_assert(std::is_trivially_copyable_v<VirtualIoapic::State>);
static_assert(sizeof(VirtualIoapic::State) == 216, "VirtualIoapic::State is a saved format");

} // namespace godwit::hv
