#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

// Starts every CPU in `apic_ids` except the caller (the BSP); returns the online CPU count.
u32 smp_start_aps(const u32* apic_ids, u32 count);

} // namespace godwit::hv
