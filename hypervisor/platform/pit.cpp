#include "platform/pit.hpp"

#include "arch/x86/intrinsics.hpp"

namespace godwit::hv {

void pit_delay_us(u32 microseconds) {
    constexpr u64 pit_hz = 1193182;
    while (microseconds > 0) {
        u32 chunk = microseconds > 50000 ? 50000 : microseconds; // 16-bit counter: <= 54 ms
        u32 count = static_cast<u32>(pit_hz * chunk / 1000000);
        if (count == 0)
            count = 1;
        u8 gate = x86::inb(0x61);
        x86::outb(0x61, static_cast<u8>((gate & ~0x02) | 0x01)); // gate on, speaker off
        x86::outb(0x43, 0xB0);                                   // channel 2, lo/hi, mode 0
        x86::outb(0x42, static_cast<u8>(count));
        x86::outb(0x42, static_cast<u8>(count >> 8));
        // Mode 0: OUT2 (port 0x61 bit 5) goes high when the count reaches zero. Bounded so a
        // machine without a PIT cannot hang us.
        for (u64 spins = 0; (x86::inb(0x61) & 0x20) == 0 && spins < 100000000; ++spins) {
            x86::pause();
        }
        microseconds -= chunk;
    }
}

} // namespace godwit::hv
