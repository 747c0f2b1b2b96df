#pragma once

#include "arch/x86/mtrr.hpp"

namespace godwit::hv {

// The host's MTRR configuration, read from the MSRs on first use.
const MtrrState& host_mtrrs();

} // namespace godwit::hv
