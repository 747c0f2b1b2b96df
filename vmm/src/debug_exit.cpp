#include "godwit/vmm/debug_exit.hpp"

namespace godwit::vmm {

void DebugExit::write(std::uint64_t offset, unsigned size, std::uint64_t value) {
    if (offset != 0) {
        return; // only a write at the base port counts, as in QEMU
    }
    std::uint32_t v = static_cast<std::uint32_t>(value & all_ones(size));
    std::uint32_t result = (v << 1) | 1;
    if (!result_) {
        result_ = result;
        if (on_exit_) {
            on_exit_(result);
        }
    }
}

} // namespace godwit::vmm
