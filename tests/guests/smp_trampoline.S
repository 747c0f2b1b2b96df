/* Real-mode start of an application processor (SDM vol. 3 section 8.4.4): the SIPI vector
   v starts the AP at CS = v << 8, IP = 0. smp.c copies this code to AP_TRAMPOLINE (0x7000,
   clear of the Multiboot info QEMU puts at 0x9000). It loads the kernel's GDT, enters
   protected mode and jumps to ap_entry32 at its link address. */
#define AP_TRAMPOLINE 0x7000

    .section .text
    .code16
    .globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    lgdtl trampoline_gdt_pointer - ap_trampoline_start
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x08, $ap_entry32
    .align 4
trampoline_gdt_pointer:
    .word 23
    .long guest_gdt
ap_trampoline_end:

    .code32
ap_entry32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %fs
    mov %ax, %gs
    mov %ax, %ss
    mov $1, %eax
    lock xadd %eax, ap_next_index      /* eax = this AP's index (1, 2, ...) */
    mov %eax, %ebx
    shl $12, %ebx
    lea ap_stacks(%ebx), %esp          /* top of stack (index) = ap_stacks + index * 4 KiB */
    push %eax
    call ap_main
1:  cli
    hlt
    jmp 1b

    .section .data
    .globl ap_next_index
ap_next_index:
    .long 1
