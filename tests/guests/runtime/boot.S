/* Multiboot1 entry of every test guest (Multiboot spec 0.6.96, section 3.1.2 header and
   3.2 machine state): the loader enters in 32-bit protected mode with paging off, EAX = magic,
   EBX = info. The loader's GDT is not guaranteed valid, so load our own first. */
#define MB1_MAGIC 0x1BADB002
#define MB1_FLAGS 0x00000003 /* bit 0: page-align modules, bit 1: memory information */

    .section .multiboot, "a"
    .align 4
    .long MB1_MAGIC, MB1_FLAGS, -(MB1_MAGIC + MB1_FLAGS)

    .section .text
    .code32
    .globl _start
_start:
    cli
    cld
    mov $boot_stack_top, %esp
    mov %eax, %edi
    mov %ebx, %esi
    lgdt guest_gdt_pointer
    ljmp $0x08, $1f
1:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %fs
    mov %ax, %gs
    mov %ax, %ss
    push %esi
    push %edi
    call guest_entry
2:  cli
    hlt
    jmp 2b

    .section .data
    .align 8
    .globl guest_gdt
guest_gdt:
    .quad 0                     /* null */
    .quad 0x00CF9A000000FFFF    /* 0x08: flat 32-bit code */
    .quad 0x00CF92000000FFFF    /* 0x10: flat 32-bit data */
guest_gdt_end:
    .globl guest_gdt_pointer
guest_gdt_pointer:
    .word guest_gdt_end - guest_gdt - 1
    .long guest_gdt

    .section .bss
    .align 16
boot_stack:
    .skip 16384
boot_stack_top:
