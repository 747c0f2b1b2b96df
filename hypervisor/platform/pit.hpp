#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

// Busy-waits `microseconds` using PIT channel 2 (8254 at 1.193182 MHz, gate via port 0x61).
void pit_delay_us(u32 microseconds);

} // namespace godwit::hv
