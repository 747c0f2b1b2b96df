// Event-injection and exit-interruption fields as far as NMIs go (Intel SDM Vol. 3C, 25.8.3
// "VM-Entry Controls for Event Injection", 25.9.2 "Information for VM Exits Due to Vectored
// Events", 26.3.1.5 "Checks on Guest Non-Register State"). Pure; unit-tested on the host.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv::vmx {

inline constexpr u32 event_valid = 1u << 31;
inline constexpr u32 event_type_nmi = 2u << 8; // bits 10:8
inline constexpr u32 nmi_vector = 2;

// The VM-entry interruption-information value that delivers an NMI.
inline constexpr u32 nmi_injection = event_valid | event_type_nmi | nmi_vector;

// An exit caused by an NMI ("NMI exiting" = 1): basic reason 0 with an NMI in the exit
// interruption information (an exception exit has type 3 or 6 there).
constexpr bool is_nmi_exit(u32 exit_interruption_info) {
    return (exit_interruption_info & event_valid) != 0 &&
           (exit_interruption_info & (7u << 8)) == event_type_nmi;
}

// Interruptibility-state bits (Table 25-3).
inline constexpr u64 blocking_by_sti = 1u << 0;
inline constexpr u64 blocking_by_mov_ss = 1u << 1;
inline constexpr u64 blocking_by_nmi = 1u << 3;

// Whether a VM entry may inject an NMI now: not in the shadow of STI or MOV SS (some CPUs
// refuse the entry for STI blocking too) and not inside the vCPU's own NMI handler.
constexpr bool nmi_injectable(u64 interruptibility) {
    return (interruptibility & (blocking_by_sti | blocking_by_mov_ss | blocking_by_nmi)) == 0;
}

} // namespace godwit::hv::vmx
