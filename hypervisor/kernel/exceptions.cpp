// Exceptions in the hypervisor: a #GP at an instruction listed in the exception table (a
// deliberate probe) resumes at its fixup; anything else is fatal: print what happened and
// where, then stop this run.
#include "arch/x86/intrinsics.hpp"
#include "kernel/console.hpp"
#include "kernel/end_run.hpp"
#include "kernel/percpu.hpp"

namespace godwit::hv {

// Matches the push order in boot/exception_stubs.S (lowest address first).
struct ExceptionFrame {
    u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    u64 vector, error_code;
    u64 rip, cs, rflags, rsp, ss; // pushed by the CPU
};
static_assert(sizeof(ExceptionFrame) == 22 * 8);

namespace {

const char* exception_name(u64 vector) {
    static const char* const names[32] = {"#DE divide error",
                                          "#DB debug",
                                          "NMI",
                                          "#BP breakpoint",
                                          "#OF overflow",
                                          "#BR bound range",
                                          "#UD invalid opcode",
                                          "#NM device not available",
                                          "#DF double fault",
                                          "coprocessor overrun",
                                          "#TS invalid TSS",
                                          "#NP segment not present",
                                          "#SS stack fault",
                                          "#GP general protection",
                                          "#PF page fault",
                                          "reserved",
                                          "#MF x87 error",
                                          "#AC alignment check",
                                          "#MC machine check",
                                          "#XM SIMD error",
                                          "#VE virtualization",
                                          "#CP control protection",
                                          "reserved",
                                          "reserved",
                                          "reserved",
                                          "reserved",
                                          "reserved",
                                          "reserved",
                                          "#HV hypervisor injection",
                                          "#VC VMM communication",
                                          "#SX security",
                                          "reserved"};
    return vector < 32 ? names[vector] : "unknown";
}

} // namespace

struct ExtableEntry {
    u64 fault_rip, fixup_rip;
};
extern "C" const ExtableEntry __extable_start[], __extable_end[];

extern "C" void exception_handler(ExceptionFrame* f) {
    // An NMI in VMX root operation belongs to the root partition: note it for its vCPU on
    // this CPU and return (IRET unblocks NMIs). Not before this CPU has its per-CPU data.
    if (f->vector == 2 && this_cpu_ready() && this_cpu().runs_root) {
        this_cpu().root_nmi_pending = true;
        return;
    }
    // An instruction that may fault on purpose (probing an MSR): resume at its fixup.
    for (const ExtableEntry* e = __extable_start; e != __extable_end; ++e) {
        if (e->fault_rip == f->rip && f->vector == 13) {
            f->rip = e->fixup_rip;
            return;
        }
    }
    console_printf("\n*** godwit: FATAL exception %lu (%s), error code 0x%lx\n", f->vector,
                   exception_name(f->vector), f->error_code);
    console_printf("RIP=%016lx CS=%04lx RFLAGS=%016lx RSP=%016lx SS=%04lx\n", f->rip, f->cs,
                   f->rflags, f->rsp, f->ss);
    console_printf("RAX=%016lx RBX=%016lx RCX=%016lx RDX=%016lx\n", f->rax, f->rbx, f->rcx, f->rdx);
    console_printf("RSI=%016lx RDI=%016lx RBP=%016lx R8 =%016lx\n", f->rsi, f->rdi, f->rbp, f->r8);
    console_printf("R9 =%016lx R10=%016lx R11=%016lx R12=%016lx\n", f->r9, f->r10, f->r11, f->r12);
    console_printf("R13=%016lx R14=%016lx R15=%016lx\n", f->r13, f->r14, f->r15);
    console_printf("CR0=%016lx CR2=%016lx CR3=%016lx CR4=%016lx\n", x86::read_cr0(),
                   x86::read_cr2(), x86::read_cr3(), x86::read_cr4());
    end_run("fatal exception");
}

} // namespace godwit::hv
