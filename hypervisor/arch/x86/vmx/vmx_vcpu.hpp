// One VT-x virtual CPU: its VMCS, the guest's GPRs, and entry until the next VM exit.
// The caller (the self-tests now, partitions later) handles exits and decides whether to
// resume. Intel SDM Vol. 3C, chapters 25 (VMCS), 26 (VM-entry checks), 28 (VM exits).
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

struct GuestRegisters { // layout used by vmx_entry.S
    u64 rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15;
};
static_assert(sizeof(GuestRegisters) == 15 * 8);
static_assert(__builtin_offsetof(GuestRegisters, rdi) == 40);
static_assert(__builtin_offsetof(GuestRegisters, r15) == 112);

enum class GuestMode : u8 { long_mode, real_mode };

struct VcpuConfig {
    GuestMode mode = GuestMode::long_mode;
    u64 eptp = 0;
    u16 vpid = 1;
    u64 rip = 0, rsp = 0;
    u64 cr3 = 0;        // guest page tables (long mode)
    u64 gdt_base = 0;   // guest GDT (long mode), limit 0x17
    bool pml = false;   // log dirty pages into pml_buffer
    u64 pml_buffer = 0; // host-physical 4 KiB page
    bool preemption_timer = false;
    u32 preemption_timer_value = 0;
};

struct VmExit {
    u32 reason;            // basic exit reason
    bool entry_failed;     // VM entry failed (reason has bit 31, or VMfail)
    u32 instruction_error; // VM-instruction error when VMLAUNCH/VMRESUME failed
    u64 qualification;
    u64 guest_physical;
    u64 guest_rip;
    u32 instruction_length;
};

class VmxVcpu {
  public:
    // Allocates and fills a VMCS for `config` on the calling CPU (which must be in VMX
    // operation). False with *error set when a control is unsupported or a VMWRITE fails.
    bool create(const VcpuConfig& config, const char** error);
    // Enters the guest and returns at the next VM exit (or entry failure).
    VmExit run();
    void skip_instruction(u32 length); // RIP += length (after emulating the instruction)
    u64 read_field(u32 encoding) const;
    void write_field(u32 encoding, u64 value);
    void destroy();

    GuestRegisters regs{};

  private:
    PhysAddr vmcs_{};
    bool launched_ = false;
};

} // namespace godwit::hv
