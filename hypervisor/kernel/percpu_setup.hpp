#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

// Called by each CPU on itself: descriptors, GS base, online count.
void percpu_init_this_cpu(u32 index, u32 apic_id, u64 stack_top);

} // namespace godwit::hv
