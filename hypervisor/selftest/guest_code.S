/* Self-test guest programs. The hypervisor copies a program to guest-physical 0x1000 and
 * runs it; absolute addresses below are guest-physical (the 64-bit guests identity-map
 * their first GiB). Each program ends with VMCALL (RAX = 0x600D) or HLT. */
#define DONE 0x600D
    .section .rodata
    .code64

/* CPUID leaf 0 into 0x20000.., OUT 0x42 to port 0x80, VMCALL. */
    .globl guest_cpuid_io_vmcall, guest_cpuid_io_vmcall_end
guest_cpuid_io_vmcall:
    xor %eax, %eax
    xor %ecx, %ecx
    cpuid
    movl %ebx, 0x20000
    movl %edx, 0x20004
    movl %ecx, 0x20008
    mov $0x42, %al
    outb %al, $0x80
    mov $DONE, %eax
    vmcall
    hlt
guest_cpuid_io_vmcall_end:

/* Reads GPA 0x400000 and writes GPA 0x401008, neither mapped at start: the EPT-violation
 * handler maps them on demand. VMCALL with RAX = DONE, RBX = what was read. */
    .globl guest_demand_map, guest_demand_map_end
guest_demand_map:
    movq 0x400000, %rbx
    movq $0x77, 0x401008
    mov $DONE, %eax
    vmcall
    hlt
guest_demand_map_end:

/* Writes pages 3, 7, 8, 20 and 63 of the 64 pages at 0x100000 (page 3 twice), reads page 9. */
    .globl guest_dirty_pages, guest_dirty_pages_end
guest_dirty_pages:
    movq $1, 0x103000
    movq $2, 0x103008
    movq $3, 0x107000
    movq $4, 0x108800
    movq $5, 0x114000
    movq $6, 0x13FFF8
    movq 0x109000, %rcx
    mov $DONE, %eax
    vmcall
    hlt
guest_dirty_pages_end:

/* Spins forever: only the VMX preemption timer gets the CPU back. */
    .globl guest_spin, guest_spin_end
guest_spin:
1:  jmp 1b
guest_spin_end:

/* RBX = RBX + 1, VMCALL: the per-CPU guest proves it ran where it was started. */
    .globl guest_increment, guest_increment_end
guest_increment:
    inc %rbx
    mov $DONE, %eax
    vmcall
    hlt
guest_increment_end:

/* Hypervisor CPUID leaf into 0x20010.., sets CR0.NE (owned by VMX: exits), reads CR0 back
 * into RBX, reads IA32_PAT into 0x20020, VMCALL. */
    .globl guest_cr_msr, guest_cr_msr_end
guest_cr_msr:
    mov $0x40000000, %eax
    xor %ecx, %ecx
    cpuid
    movl %ebx, 0x20010
    movl %ecx, 0x20014
    movl %edx, 0x20018
    mov %cr0, %rax
    or $0x20, %rax
    mov %rax, %cr0
    mov %cr0, %rbx
    mov $0x277, %ecx
    rdmsr
    movl %eax, 0x20020
    movl %edx, 0x20024
    mov $DONE, %eax
    vmcall
    hlt
guest_cr_msr_end:

/* Reads an MSR that does not exist: #GP, and with no IDT, a triple fault. */
    .globl guest_faulting, guest_faulting_end
guest_faulting:
    mov $0x12345678, %ecx
    rdmsr
    mov $DONE, %eax
    vmcall
guest_faulting_end:

/* Real mode (unrestricted guest): AX = 0x1234 + 0x1111, stored at 0x2000 and written to
 * port 0x81, then HLT. */
    .code16
    .globl guest_real_mode, guest_real_mode_end
guest_real_mode:
    mov $0x1234, %ax
    add $0x1111, %ax
    mov %ax, 0x2000
    mov $0x81, %dx
    out %ax, %dx
    hlt
guest_real_mode_end:
    .code64
