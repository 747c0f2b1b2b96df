// Architectural state of one vCPU as the VMM sees it: what a loader sets up before the first
// run, what "vCPU register get/set" reads and writes, and what migration transfers
// (serialized with vmm/proto/vcpu_state.proto). Segment access rights use the VMX
// guest-state format (SDM vol. 3 section 24.4.1): type 3:0, S 4, DPL 6:5, P 7, AVL 12,
// L 13, D/B 14, G 15, unusable 16.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace godwit::vmm {

struct SegmentRegister {
    std::uint16_t selector = 0;
    std::uint64_t base = 0;
    std::uint32_t limit = 0xffff;
    std::uint32_t access_rights = 0;
    bool operator==(const SegmentRegister&) const = default;
};

struct DescriptorTable {
    std::uint64_t base = 0;
    std::uint16_t limit = 0xffff;
    bool operator==(const DescriptorTable&) const = default;
};

enum class ActivityState : std::uint32_t { active = 0, halted = 1, wait_for_sipi = 3 };

// Events that have been raised but not yet delivered when the state was captured.
struct PendingEvents {
    bool exception_pending = false;
    std::uint8_t exception_vector = 0;
    bool exception_has_error_code = false;
    std::uint32_t exception_error_code = 0;
    bool nmi_pending = false;
    bool nmis_blocked = false;
    bool interrupt_pending = false; // an external interrupt accepted for injection
    std::uint8_t interrupt_vector = 0;
    std::uint32_t interruptibility = 0; // VMX interruptibility state (STI/MOV SS blocking)
    std::uint8_t sipi_vector = 0;
    bool operator==(const PendingEvents&) const = default;
};

struct VcpuState {
    // General-purpose registers in the architectural encoding order (RAX=0 ... R15=15).
    std::uint64_t rax = 0, rcx = 0, rdx = 0, rbx = 0, rsp = 0, rbp = 0, rsi = 0, rdi = 0;
    std::uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
    std::uint64_t rip = 0xfff0;
    std::uint64_t rflags = 0x2;

    SegmentRegister cs, ds, es, fs, gs, ss, ldtr, tr;
    DescriptorTable gdtr, idtr;

    std::uint64_t cr0 = 0x6000'0010, cr2 = 0, cr3 = 0, cr4 = 0, cr8 = 0;
    std::uint64_t dr0 = 0, dr1 = 0, dr2 = 0, dr3 = 0, dr6 = 0xffff'0ff0, dr7 = 0x400;
    std::uint64_t xcr0 = 1;

    // MSRs.
    std::uint64_t efer = 0;
    std::uint64_t pat = 0x0007'0406'0007'0406;
    std::uint64_t tsc = 0;
    std::uint64_t tsc_aux = 0;
    std::uint64_t apic_base = 0xFEE0'0000 | (1u << 11); // enabled; BSP bit set per vCPU 0
    std::uint64_t sysenter_cs = 0, sysenter_esp = 0, sysenter_eip = 0;
    std::uint64_t star = 0, lstar = 0, cstar = 0, fmask = 0, kernel_gs_base = 0;
    std::uint64_t misc_enable = 1; // fast strings

    // XSAVE area (standard format; the first 512 bytes are the FXSAVE legacy region with
    // x87/SSE state). Empty means "FPU in its reset state".
    std::vector<std::uint8_t> xsave_area;

    ActivityState activity = ActivityState::active;
    PendingEvents events;

    bool operator==(const VcpuState&) const = default;
};

// The x86 reset state (SDM vol. 3 table 9-1) for the BSP (vCPU 0, active) or an AP
// (waiting for SIPI). apic_id is written nowhere here; it is the vCPU's index.
VcpuState reset_vcpu_state(bool bootstrap_processor);

// Migration encoding (vcpu_state.proto). parse throws invalid_input for bytes that are not a
// VcpuState message or carry out-of-range values.
std::string serialize_vcpu_state(const VcpuState& state);
VcpuState parse_vcpu_state(const std::string& bytes);

} // namespace godwit::vmm
