/* Multiboot2 header (Multiboot2 specification, section 3.1). GRUB: `multiboot2 godwit.elf`. */
#define MB2_MAGIC 0xE85250D6
#define MB2_ARCH_I386 0
#define MB2_HEADER_LENGTH (mb2_header_end - mb2_header)

    .section .multiboot2, "a"
    .balign 8
mb2_header:
    .long MB2_MAGIC
    .long MB2_ARCH_I386
    .long MB2_HEADER_LENGTH
    .long -(MB2_MAGIC + MB2_ARCH_I386 + MB2_HEADER_LENGTH)

    /* Module alignment tag (type 6): modules page-aligned (the root kernel, initramfs). */
    .balign 8
    .short 6
    .short 0
    .long 8

    /* End tag. */
    .balign 8
    .short 0
    .short 0
    .long 8
mb2_header_end:
