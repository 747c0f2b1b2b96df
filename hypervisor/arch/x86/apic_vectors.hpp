// Vector bitmaps of a local APIC (IRR, ISR, TMR: 256 bits in eight 32-bit words) and the
// priority rule that decides whether a requested interrupt is delivered (Intel SDM Vol. 3A,
// 11.8.3.1 "Task and Processor Priorities"). Pure; used by the virtual LAPIC and for the
// physical APIC's pending-interrupt check.
#pragma once

#include <bit>

#include "lib/types.hpp"

namespace godwit::hv::x86 {

// The highest vector set in `bits`, or -1.
constexpr int highest_vector(const u32 (&bits)[8]) {
    for (int i = 7; i >= 0; --i) {
        if (bits[i] != 0)
            return i * 32 + 31 - std::countl_zero(bits[i]);
    }
    return -1;
}

// Whether the highest requested vector is above the processor priority (PPR): only its
// priority class (bits 7:4) counts.
constexpr bool deliverable(int vector, u32 ppr) {
    return vector >= 0 && (static_cast<u32>(vector) & 0xF0) > (ppr & 0xF0);
}

} // namespace godwit::hv::x86
