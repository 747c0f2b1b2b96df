/* 32-bit Multiboot2 entry → 64-bit long mode → kernel_main (Intel SDM Vol. 3A, 10.8.5
 * "Initializing IA-32e Mode"). GRUB enters here in flat 32-bit protected mode, paging off,
 * EAX = 0x36D76289, EBX = physical address of the Multiboot2 information structure.
 * Boot page tables identity-map the first 4 GiB with 2 MiB pages; C++ code replaces them. */

#define MSR_EFER 0xC0000080
#define EFER_LME (1 << 8)
#define EFER_NXE (1 << 11)
#define CR0_PG (1 << 31)
#define CR0_WP (1 << 16)
#define CR0_NE (1 << 5)
#define CR4_PAE (1 << 5)
#define COM1 0x3F8

    .section .text.boot, "ax"
    .code32
    .globl _start
_start:
    cli
    cld
    mov $boot_stack_top, %esp
    mov %eax, boot_magic
    mov %ebx, boot_info_pa

    /* Long mode available? CPUID 0x80000001 EDX bit 29. */
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    test $(1 << 29), %edx
    jz no_long_mode

    /* PML4[0] -> PDPT; PDPT[0..3] -> PD0..PD3; each PD maps 1 GiB with 2 MiB pages. */
    mov $boot_pdpt, %eax
    or $0x3, %eax
    mov %eax, boot_pml4
    mov $boot_pd, %edi
    mov $boot_pdpt, %esi
    xor %ecx, %ecx
1:  mov %edi, %eax
    or $0x3, %eax
    mov %eax, (%esi,%ecx,8)
    add $4096, %edi
    inc %ecx
    cmp $4, %ecx
    jne 1b
    /* 2048 PD entries: physical = index * 2 MiB, present | writable | page size. */
    mov $boot_pd, %edi
    xor %ecx, %ecx
2:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, (%edi,%ecx,8)
    movl $0, 4(%edi,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jne 2b

    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $CR4_PAE, %eax
    mov %eax, %cr4
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    or $(CR0_PG | CR0_WP | CR0_NE), %eax
    mov %eax, %cr0

    lgdt boot_gdt_pointer
    ljmp $0x08, $long_mode_entry

no_long_mode:
    mov $no_long_mode_message, %esi
3:  lodsb
    test %al, %al
    jz 5f
    mov %al, %bl
    mov $(COM1 + 5), %dx
4:  inb %dx, %al
    test $0x20, %al
    jz 4b
    mov $COM1, %dx
    mov %bl, %al
    outb %al, %dx
    jmp 3b
5:  hlt
    jmp 5b

    .code64
long_mode_entry:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    mov $boot_stack_top, %rsp
    xor %rbp, %rbp
    /* Zero .bss (the boot stack and page tables live in .data, so this is safe). */
    mov $__bss_start, %rdi
    mov $__bss_end, %rcx
    sub %rdi, %rcx
    shr $3, %rcx
    xor %eax, %eax
    rep stosq
    mov boot_magic(%rip), %edi
    mov boot_info_pa(%rip), %esi
    call kernel_main
6:  cli
    hlt
    jmp 6b

    .section .rodata
no_long_mode_message:
    .asciz "godwit: refusing to start: CPU has no long mode (64-bit) support\r\n"

    .section .data
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF   /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF   /* 0x10: data */
boot_gdt_end:
boot_gdt_pointer:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .balign 4
boot_magic: .long 0
boot_info_pa: .long 0

    /* Page tables and stack in .data (not .bss): .bss is zeroed after they are in use. */
    .balign 4096
    .globl boot_pml4
boot_pml4: .fill 512, 8, 0
boot_pdpt: .fill 512, 8, 0
boot_pd: .fill 4 * 512, 8, 0
    .globl boot_stack_top
boot_stack: .fill 16384, 1, 0
boot_stack_top:
