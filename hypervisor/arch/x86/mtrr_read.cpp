// Reads the boot CPU's MTRRs (they are the same on every CPU once firmware is done).
#include "arch/x86/mtrr_read.hpp"
#include "arch/x86/intrinsics.hpp"
#include "arch/x86/mtrr.hpp"

namespace godwit::hv {
namespace {

MtrrState state;
bool read_once = false;

} // namespace

const MtrrState& host_mtrrs() {
    if (read_once)
        return state;
    read_once = true;
    state = MtrrState{};
    u32 phys_bits = 36;
    if (x86::cpuid(0x80000000).eax >= 0x80000008)
        phys_bits = x86::cpuid(0x80000008).eax & 0xFF;
    state.physical_address_mask = (1ull << phys_bits) - 1;
    if (((x86::cpuid(1).edx >> 12) & 1) == 0) {
        // No MTRRs: everything write-back is the architectural meaning of "no constraints".
        state.enabled = true;
        state.default_type = mtrr_wb;
        return state;
    }
    u64 cap = x86::rdmsr(0xFE);
    u64 def = x86::rdmsr(0x2FF);
    state.enabled = (def >> 11) & 1;
    state.fixed_enabled = ((def >> 10) & 1) && ((cap >> 8) & 1);
    state.default_type = static_cast<u8>(def & 0xFF);
    static constexpr u32 fixed_msrs[11] = {0x250, 0x258, 0x259, 0x268, 0x269, 0x26A,
                                           0x26B, 0x26C, 0x26D, 0x26E, 0x26F};
    if (state.fixed_enabled) {
        for (u32 i = 0; i < 11; ++i)
            state.fixed[i] = x86::rdmsr(fixed_msrs[i]);
    }
    state.variable_count = static_cast<u32>(cap & 0xFF);
    if (state.variable_count > 16)
        state.variable_count = 16;
    for (u32 i = 0; i < state.variable_count; ++i) {
        state.variable_base[i] = x86::rdmsr(0x200 + 2 * i);
        state.variable_mask[i] = x86::rdmsr(0x201 + 2 * i);
    }
    return state;
}

} // namespace godwit::hv
