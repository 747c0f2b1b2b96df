#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

// The 8254's input clock.
inline constexpr u64 pit_hz = 1193182;

// Starts PIT channel 2 counting down `count` ticks (mode 0; gate on, speaker off via port
// 0x61). Its OUT2 goes high when the count reaches zero.
void pit_channel2_start(u16 count);

// OUT2 (port 0x61 bit 5): true once the count started by pit_channel2_start has run out.
bool pit_channel2_done();

// Busy-waits `microseconds` using PIT channel 2.
void pit_delay_us(u32 microseconds);

} // namespace godwit::hv
