// The physical local APIC: xAPIC (MMIO) or x2APIC (MSRs) when the CPU has it; used to start
// application processors (Intel SDM Vol. 3A, 11.6 "Issuing Interprocessor Interrupts",
// 9.4.4 "MP Initialization Example").
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

// Enables the APIC on the calling CPU (x2APIC mode when supported). Returns true in x2APIC mode.
bool lapic_enable_this_cpu();
u32 lapic_id();
// Puts this CPU's APIC back in the mode the firmware left it (xAPIC when it had not enabled
// x2APIC) before the root partition takes the APIC over: Linux decides on x2APIC itself
// and, without interrupt remapping, cannot leave a mode it found enabled.
void lapic_return_to_firmware_mode();
// INIT, then two STARTUP IPIs with `vector` (start address = vector << 12), with the SDM's delays.
bool lapic_start_ap(u32 apic_id, u8 vector);

} // namespace godwit::hv
