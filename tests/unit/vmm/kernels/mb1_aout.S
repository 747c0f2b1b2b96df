/* Multiboot1 kernel using the a.out kludge (header flag 16): linked at 1 MiB and turned into
   a flat binary, so only the header's address fields tell a loader where it goes. */
#define FLAGS 0x00010003
    .section .multiboot, "a"
    .align 4
mb_header:
    .long 0x1BADB002, FLAGS, -(0x1BADB002 + FLAGS)
    .long mb_header         /* header_addr */
    .long __image_start     /* load_addr */
    .long data_end          /* load_end_addr */
    .long bss_end           /* bss_end_addr */
    .long entry             /* entry_addr */
    .section .text
    .code32
entry:
    cli
    hlt
    jmp entry
    .section .data
    .ascii "aout-kludge-data"
data_end:
    .section .bss
    .skip 8192
bss_end:
