// Root SMP without hardware INITs (docs/hypervisor-root.md, "Root SMP"). The root's writes
// to its local APIC's interrupt command register are trapped; INIT and STARTUP IPIs for the
// root's own CPUs go through this policy:
//
// - An AP's root vCPU waits in the VMX wait-for-SIPI activity state, where it already is in
//   the INIT state: an INIT for it is dropped (never sent), the first STARTUP IPI is sent
//   to the hardware, which makes the vCPU exit with the SIPI and start at its vector.
// - Later STARTUP IPIs (Linux sends two) are dropped: the vCPU is starting or running.
// - An INIT for a running vCPU (CPU hotplug) is sent to the hardware: the INIT VM exit
//   resets that vCPU to wait-for-SIPI.
// - The INIT level de-assert of older CPUs is dropped, as modern CPUs ignore it.
//
// So a vCPU never sees an INIT it did not need, which avoids Bochs 2.7's bug (an INIT VM
// exit leaves the INIT pending, so a vCPU that was INITed in wait-for-SIPI could never run)
// and the latched INIT that real CPUs deliver right after the SIPI start. Pure: the state of
// each CPU is a byte changed with atomic compare-and-swap, so the logic is host-tested.
#pragma once

#include "arch/x86/apic_icr.hpp"
#include "lib/types.hpp"

namespace godwit::hv::root {

enum class ApState : u8 {
    absent = 0,           // no root vCPU on this CPU (not present, or it failed to start)
    waiting_for_sipi = 1, // in the INIT state, parked in wait-for-SIPI
    sipi_sent = 2,        // a STARTUP IPI is on its way; the vCPU has not taken it yet
    running = 3,
    init_sent = 4, // running, and an INIT is on its way (it will wait for a SIPI again)
};

struct RootCpus {
    u32 count;           // CPUs (indices 0..count-1)
    const u32* apic_ids; // by index
    u8* states;          // ApState by index, changed atomically
};

// The CPUs (a bit per index) an INIT or STARTUP IPI written on CPU `self` addresses:
// physical destinations by APIC ID (the broadcast ID reaches all), and the shorthands. A
// logical destination addresses none (Linux never starts CPUs that way; the caller logs it).
u64 startup_targets(const x86::IcrCommand& command, u32 self, const RootCpus& cpus, bool x2apic);

enum class StartupAction : u8 { drop, send };

// What to do with an INIT (assert) or STARTUP IPI for CPU `index`, with the state changed
// as sending it implies. Any other delivery mode, and the INIT de-assert: drop.
StartupAction claim_startup_ipi(const x86::IcrCommand& command, RootCpus& cpus, u32 index);

// The vCPU on CPU `index` took a SIPI (it now runs) or an INIT (it waits for a SIPI); the
// state follows either way. Returns false when the exit was not one the policy sent: an
// INIT nobody sent (an emulator that keeps INIT pending after its VM exit), or a SIPI the
// policy did not send.
bool on_sipi_exit(RootCpus& cpus, u32 index);
bool on_init_exit(RootCpus& cpus, u32 index);

} // namespace godwit::hv::root
