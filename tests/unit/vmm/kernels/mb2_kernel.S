/* Multiboot2 ELF kernel (Multiboot2 spec section 3.1): asks for the command line, modules,
   basic memory information and the memory map, optionally the ACPI RSDP. */
    .section .multiboot, "a"
    .align 8
header:
    .long 0xE85250D6, 0, header_end - header
    .long -(0xE85250D6 + 0 + (header_end - header))
    .align 8
    .short 1, 0             /* information request, required */
    .long 8 + 4 * 4
    .long 1, 3, 4, 6
    .align 8
    .short 1, 1             /* information request, optional */
    .long 8 + 4
    .long 14
    .align 8
    .short 0, 0             /* end */
    .long 8
header_end:
    .section .text
    .code32
    .globl _start
_start:
    cli
    hlt
    jmp _start
    .section .bss
    .skip 4096
