// One VT-x virtual CPU: its VMCS, the guest's GPRs, and entry until the next VM exit.
// The caller (the self-tests now, partitions later) handles exits and decides whether to
// resume. Intel SDM Vol. 3C, chapters 25 (VMCS), 26 (VM-entry checks), 28 (VM exits).
#pragma once

#include "abi/godwit_hypercall.h"
#include "arch/x86/vmx/vmcs_fields.hpp"
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
    // The root partition: owns the machine's devices, so no HLT or port I/O exits; MSRs go
    // through `msr_bitmap` (a zero bitmap = no exits where the bitmap applies); guest PAT
    // and XSAVES/INVPCID/RDTSCP are its own (Linux needs them, ../shared/ROOT-PARTITION.md).
    bool root = false;
    u64 msr_bitmap = 0;
    u16 code_selector = 0x08, data_selector = 0x10, gdt_limit = 0x17; // long mode
    bool wait_for_sipi = false; // real mode, parked until a SIPI (an AP of the root)
    // A guest partition's vCPU: external interrupts exit (they belong to the root, which
    // takes them once it runs again), and unrestricted guest (Multiboot starts paging off).
    bool exit_on_interrupts = false;
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
    // Architectural INIT state (Vol. 3A, 9.1.1, Table 9-1), parked in wait-for-SIPI: what an
    // INIT IPI does to a real CPU. Needs unrestricted guest.
    void reset_to_wait_for_sipi();
    u64 read_field(u32 encoding) const;
    u64 read(vmx::VmcsField f) const { return read_field(static_cast<u32>(f)); }
    void write(vmx::VmcsField f, u64 value) { write_field(static_cast<u32>(f), value); }
    // Exceptions delivered at the next VM entry (Vol. 3C 26.6): #GP(0) and #UD, with RIP
    // left on the faulting instruction.
    void inject_gp();
    void inject_ud();
    // Interrupt delivery for guest partitions (Vol. 3C 26.6, 25.8.3; 25.2 windows).
    void inject_interrupt(u8 vector);
    bool injection_pending() const;  // an event already waits in the VM-entry fields
    bool interrupts_open() const;    // RFLAGS.IF set and no STI/MOV-SS blocking
    void request_interrupt_window(bool on); // exit as soon as interrupts_open()
    // VMX-preemption timer: exit after about `tsc_cycles` (off when false).
    void set_preemption_timer(bool on, u64 tsc_cycles);
    // An event whose delivery the last exit interrupted (IDT-vectoring information, Vol. 3C
    // 27.2.4) is put back into the VM-entry fields, so the next entry delivers it again.
    void requeue_interrupted_event();
    // From the INIT state: SIPI with vector V starts real mode at CS = V << 8 (base V << 12),
    // IP = 0 (Vol. 3A 9.4.4.1).
    void start_at_sipi(u8 vector);
    // CR0/CR4 as the guest sees them: the real register for bits the hypervisor does not
    // own, the read shadow for the bits it does (guest/host mask) — Vol. 3C 25.6.6.
    u64 guest_visible_cr0() const;
    u64 guest_visible_cr4() const;
    void write_field(u32 encoding, u64 value);
    void destroy();
    // Host-state fields for the CPU about to run this vCPU (each CPU has its own GDT, TSS
    // and GS base); VMPTRLDs the VMCS.
    void write_host_state();
    // VMCLEAR: the VMCS may next be loaded on another CPU (and must be launched again).
    void release();
    // The whole architectural state, from the hypercall ABI's layout (Vol. 3C 25.4).
    void set_state(const struct godwit_hc_vcpu_state& state);
    void get_state(struct godwit_hc_vcpu_state& state) const; // CR0/CR4 as the guest sees them

    GuestRegisters regs{};
    u64 cr2 = 0; // the guest's CR2, loaded before every entry and saved after every exit
    // IA32_MISC_ENABLE (0x1A0) as this vCPU sees it: virtual, as KVM does, because not every
    // CPU (Bochs' emulated ones) implements the MSR and Linux reads it before it has an IDT.
    // Fast strings on, branch trace and PEBS unavailable.
    static constexpr u64 misc_enable_default = (1ull << 0) | (1ull << 11) | (1ull << 12);
    u64 misc_enable = misc_enable_default;

  private:
    PhysAddr vmcs_{};
    bool launched_ = false;
};

} // namespace godwit::hv
