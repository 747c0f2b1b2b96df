/* VM entry and exit (Intel SDM Vol. 3C, 27 "VM Entries", 28.5 "Loading Host State").
 *
 *   u64 vmx_enter(GuestRegisters* regs, u64 launched)
 *
 * Saves the host's callee-saved registers, points HOST_RSP at the saved `regs` pointer,
 * loads the guest's GPRs and executes VMLAUNCH (launched == 0) or VMRESUME. A VM exit lands
 * in vmx_exit_entry (HOST_RIP), which stores the guest's GPRs back into *regs and returns 0.
 * A failed VMLAUNCH/VMRESUME falls through and returns 1 (read VM_INSTRUCTION_ERROR). */
#define VMCS_HOST_RSP 0x6C14

    .text
    .code64
    .globl vmx_enter
vmx_enter:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    push %rdi                      /* (%rsp) = regs, found again at exit */
    mov $VMCS_HOST_RSP, %rax
    vmwrite %rsp, %rax
    test %rsi, %rsi                /* flags survive the MOVs below */
    mov 8(%rdi), %rbx
    mov 16(%rdi), %rcx
    mov 24(%rdi), %rdx
    mov 32(%rdi), %rsi
    mov 48(%rdi), %rbp
    mov 56(%rdi), %r8
    mov 64(%rdi), %r9
    mov 72(%rdi), %r10
    mov 80(%rdi), %r11
    mov 88(%rdi), %r12
    mov 96(%rdi), %r13
    mov 104(%rdi), %r14
    mov 112(%rdi), %r15
    mov 0(%rdi), %rax
    mov 40(%rdi), %rdi
    jnz 1f
    vmlaunch
    jmp 2f
1:  vmresume
2:  /* VM entry failed: guest registers were loaded into ours; the stack is intact. */
    pop %rdi
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    mov $1, %eax
    ret

    .globl vmx_exit_entry
vmx_exit_entry:
    xchg (%rsp), %rdi              /* rdi = regs; the stack slot now holds the guest's rdi */
    mov %rax, 0(%rdi)
    mov %rbx, 8(%rdi)
    mov %rcx, 16(%rdi)
    mov %rdx, 24(%rdi)
    mov %rsi, 32(%rdi)
    mov %rbp, 48(%rdi)
    mov %r8, 56(%rdi)
    mov %r9, 64(%rdi)
    mov %r10, 72(%rdi)
    mov %r11, 80(%rdi)
    mov %r12, 88(%rdi)
    mov %r13, 96(%rdi)
    mov %r14, 104(%rdi)
    mov %r15, 112(%rdi)
    pop %rax
    mov %rax, 40(%rdi)
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    xor %eax, %eax
    ret
