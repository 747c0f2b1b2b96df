#include "platform/pit.hpp"

#include "arch/x86/intrinsics.hpp"

namespace godwit::hv {

void pit_channel2_start(u16 count) {
    u8 gate = x86::inb(0x61);
    x86::outb(0x61, static_cast<u8>((gate & ~0x02) | 0x01)); // gate on, speaker off
    x86::outb(0x43, 0xB0);                                   // channel 2, lo/hi, mode 0
    x86::outb(0x42, static_cast<u8>(count));
    x86::outb(0x42, static_cast<u8>(count >> 8));
}

bool pit_channel2_done() {
    return (x86::inb(0x61) & 0x20) != 0;
}

void pit_delay_us(u32 microseconds) {
    while (microseconds > 0) {
        u32 chunk = microseconds > 50000 ? 50000 : microseconds; // 16-bit counter: <= 54 ms
        u32 count = static_cast<u32>(pit_hz * chunk / 1000000);
        pit_channel2_start(static_cast<u16>(count == 0 ? 1 : count));
        // Bounded so a machine without a PIT cannot hang us.
        for (u64 spins = 0; !pit_channel2_done() && spins < 100000000; ++spins) {
            x86::pause();
        }
        microseconds -= chunk;
    }
}

} // namespace godwit::hv
