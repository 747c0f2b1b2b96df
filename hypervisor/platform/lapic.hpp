// The physical local APIC: xAPIC (MMIO) or x2APIC (MSRs) when the CPU has it; used to start
// application processors (Intel SDM Vol. 3A, 11.6 "Issuing Interprocessor Interrupts",
// 9.4.4 "MP Initialization Example").
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

// Enables the APIC on the calling CPU in the mode the firmware chose (xAPIC, or x2APIC when
// the firmware enabled it). Returns true in x2APIC mode.
bool lapic_enable_this_cpu();
u32 lapic_id();
// Sends one IPI (ICR low `command`, physical destination `apic_id`) in the APIC's current
// mode; in xAPIC mode waits until it is delivered and leaves ICR high as it was.
void lapic_send_ipi(u32 apic_id, u32 command);
// Whether this CPU's APIC holds a requested interrupt it would deliver now (IRR above PPR):
// an interrupt for the root partition that has not reached it yet.
bool lapic_interrupt_pending();
// INIT, then two STARTUP IPIs with `vector` (start address = vector << 12), with the SDM's delays.
bool lapic_start_ap(u32 apic_id, u8 vector);

} // namespace godwit::hv
