/* Application-processor start-up (Intel SDM Vol. 3A, 9.4.4). kernel/smp.cpp copies this
 * section to AP_TRAMPOLINE_BASE (below 1 MiB) and sends STARTUP IPIs with vector
 * AP_TRAMPOLINE_BASE >> 12; the AP starts in real mode at CS = 0x0800, IP = 0, switches
 * straight to long mode on the boot page tables and jumps into the image. APs start one at a
 * time, so one stack slot is enough. */
#define AP_TRAMPOLINE_BASE 0x8000
#define EFER_LME (1 << 8)

    .section .ap_trampoline, "ax"
    .code16
    .globl ap_trampoline_start
ap_trampoline_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    lgdtl (ap_gdt_pointer - ap_trampoline_start)
    mov %cr4, %eax
    or $(1 << 5), %eax                 /* PAE */
    mov %eax, %cr4
    movl $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010021, %eax               /* PG | WP | NE | PE */
    mov %eax, %cr0
    ljmpl $0x08, $ap_entry64

    .balign 8
ap_gdt_pointer:
    .short 23
    .long ap_boot_gdt
    .balign 8
    .globl ap_stack_slot
ap_stack_slot: .quad 0                 /* patched per AP: stack top */
    .globl ap_index_slot
ap_index_slot: .quad 0                 /* patched per AP: CPU index */

    .section .data
    .balign 16
ap_boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF

    .text
    .code64
ap_entry64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    mov (AP_TRAMPOLINE_BASE + ap_stack_slot - ap_trampoline_start), %rsp
    mov (AP_TRAMPOLINE_BASE + ap_index_slot - ap_trampoline_start), %rdi
    xor %rbp, %rbp
    call ap_main
1:  cli
    hlt
    jmp 1b
