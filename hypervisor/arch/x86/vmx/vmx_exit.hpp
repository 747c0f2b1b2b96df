// VM-exit reasons and exit-qualification decoding (Intel SDM Vol. 3C, Appendix C and
// 28.2.1). Pure; unit-tested on the host.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv::vmx {

enum class ExitReason : u16 {
    exception_or_nmi = 0,
    external_interrupt = 1,
    triple_fault = 2,
    init_signal = 3,
    startup_ipi = 4,
    interrupt_window = 7,
    cpuid = 10,
    hlt = 12,
    invlpg = 14,
    rdtsc = 16,
    vmcall = 18,
    cr_access = 28,
    io_instruction = 30,
    rdmsr = 31,
    wrmsr = 32,
    invalid_guest_state = 33,
    msr_loading = 34,
    ept_violation = 48,
    ept_misconfiguration = 49,
    preemption_timer = 52,
    xsetbv = 55,
    pml_full = 62,
};

const char* exit_reason_name(u32 basic_reason);

struct ExitReasonField {
    u16 basic;
    bool entry_failure; // bit 31
};
constexpr ExitReasonField decode_exit_reason(u32 raw) {
    return ExitReasonField{static_cast<u16>(raw & 0xFFFF), ((raw >> 31) & 1) != 0};
}

// CR access (Table 28-3).
struct CrAccess {
    u8 cr;     // 0, 3, 4, 8
    u8 access; // 0 mov to CR, 1 mov from CR, 2 CLTS, 3 LMSW
    u8 gpr;    // 0 = RAX ... 15 = R15
    u16 lmsw_source;
};
constexpr CrAccess decode_cr_access(u64 q) {
    return CrAccess{static_cast<u8>(q & 0xF), static_cast<u8>((q >> 4) & 3),
                    static_cast<u8>((q >> 8) & 0xF), static_cast<u16>((q >> 16) & 0xFFFF)};
}

// I/O instruction (Table 28-5).
struct IoAccess {
    u8 size; // 1, 2 or 4 bytes
    bool in;
    bool string;
    bool rep;
    u16 port;
};
constexpr IoAccess decode_io(u64 q) {
    return IoAccess{static_cast<u8>((q & 7) + 1), ((q >> 3) & 1) != 0, ((q >> 4) & 1) != 0,
                    ((q >> 5) & 1) != 0, static_cast<u16>((q >> 16) & 0xFFFF)};
}

// EPT violation (Table 28-7).
struct EptViolation {
    bool read, write, execute;           // the access that faulted
    bool readable, writable, executable; // what the translation allowed
    bool linear_address_valid;
    bool caused_by_translation; // vs. by a guest paging-structure access
};
constexpr EptViolation decode_ept_violation(u64 q) {
    return EptViolation{(q & 1) != 0,        ((q >> 1) & 1) != 0, ((q >> 2) & 1) != 0,
                        ((q >> 3) & 1) != 0, ((q >> 4) & 1) != 0, ((q >> 5) & 1) != 0,
                        ((q >> 7) & 1) != 0, ((q >> 8) & 1) != 0};
}

// The VM-instruction error numbers (Vol. 3C, 31.4) as text.
const char* vm_instruction_error_text(u32 error);

} // namespace godwit::hv::vmx
