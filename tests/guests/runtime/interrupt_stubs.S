/* One 16-byte stub per IDT vector: push a zero error code where the CPU pushes none
   (SDM vol. 3 table 6-1: 8, 10-14, 17 push one), push the vector, join the common path. */
    .section .text
    .code32
    .align 16
    .globl interrupt_stubs
interrupt_stubs:
    .set vector, 0
    .rept 256
    .align 16
    .if (vector == 8) || ((vector >= 10) && (vector <= 14)) || (vector == 17)
    .else
    push $0
    .endif
    push $vector
    jmp interrupt_common
    .set vector, vector + 1
    .endr

interrupt_common:
    pusha
    push %esp
    call interrupt_dispatch
    add $4, %esp
    popa
    add $8, %esp
    iret
