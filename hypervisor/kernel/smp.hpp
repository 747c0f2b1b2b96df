// Running work on the other CPUs. The boot code starts every application processor with
// INIT-SIPI-SIPI (xAPIC or x2APIC) and parks it in a loop waiting for work.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

using CpuWork = void (*)(void* arg);

// Runs fn(arg) on every online CPU, the calling CPU included, and returns when all have
// finished. Calls on different CPUs run concurrently.
void run_on_all_cpus(CpuWork fn, void* arg);

// Runs fn(arg) on CPU `index` (may be the caller's) and waits for it to finish.
void run_on_cpu(u32 index, CpuWork fn, void* arg);

// Hands fn(arg) to another CPU without waiting: for work that never returns (a CPU that
// goes on to run a root vCPU forever). `index` must not be the caller's.
void start_on_cpu(u32 index, CpuWork fn, void* arg);

} // namespace godwit::hv
