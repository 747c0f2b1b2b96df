#include "platform/tsc_calibration.hpp"

#include "arch/x86/intrinsics.hpp"
#include "platform/pit.hpp"

namespace godwit::hv {
namespace {

constexpr u32 run_ms = 20;
constexpr u16 run_ticks = static_cast<u16>(pit_hz * run_ms / 1000); // 23863

// One run: TSC cycles while channel 2 counts `run_ticks`; 0 when OUT2 misbehaves.
u64 one_run() {
    pit_channel2_start(run_ticks);
    if (pit_channel2_done())
        return 0; // OUT2 must be low while counting: no PIT there
    u64 start = x86::rdtsc();
    for (u64 spins = 0; !pit_channel2_done(); ++spins) {
        if (spins > 100000000)
            return 0;
    }
    return x86::rdtsc() - start;
}

} // namespace

u64 measure_tsc_hz() {
    u64 runs[3];
    for (u64& r : runs) {
        r = one_run();
        if (r == 0)
            return 0;
    }
    // Median of three: one run stretched by an SMI does not count.
    auto order = [](u64& x, u64& y) {
        if (x > y) {
            u64 t = x;
            x = y;
            y = t;
        }
    };
    order(runs[0], runs[1]);
    order(runs[1], runs[2]);
    order(runs[0], runs[1]);
    return runs[1] * pit_hz / run_ticks; // cycles per run_ticks PIT ticks, in Hz
}

namespace {
u64 host_hz = 0;
} // namespace

u64 host_tsc_hz() {
    return __atomic_load_n(&host_hz, __ATOMIC_RELAXED);
}
void set_host_tsc_hz(u64 hz) {
    __atomic_store_n(&host_hz, hz, __ATOMIC_RELAXED);
}

} // namespace godwit::hv
