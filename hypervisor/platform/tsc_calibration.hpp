#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

// The TSC's frequency measured against PIT channel 2: the median of three 20 ms runs, in Hz;
// 0 when there is no working PIT (OUT2 never changes). Interrupts must be off. This is what
// the hypervisor trusts over CPUID leaves 0x15/0x16 when the two disagree (cpuid_policy.hpp).
u64 measure_tsc_hz();

// The TSC frequency the hypervisor times its own slices with: set once at boot (measured, or
// CPUID's when there is no PIT); 0 until then.
u64 host_tsc_hz();
void set_host_tsc_hz(u64 hz);

} // namespace godwit::hv
