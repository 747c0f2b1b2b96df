/* 32-bit IDT (SDM vol. 3 section 6.11): every vector has a stub; vectors without a handler
   end the test with a diagnostic, so a stray exception is a clear failure, not a hang. */
#include "guest.h"

struct idt_gate {
    uint16_t offset_low, selector;
    uint8_t zero, type_attributes;
    uint16_t offset_high;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(8)));
static interrupt_handler handlers[256];
extern char interrupt_stubs[];

void interrupts_load(void) {
    struct {
        uint16_t limit;
        uint32_t base;
    } __attribute__((packed)) pointer = {sizeof idt - 1, (uint32_t)idt};
    __asm__ volatile("lidt %0" ::"m"(pointer));
}

void interrupts_init(void) {
    for (int v = 0; v < 256; ++v) {
        uint32_t stub = (uint32_t)interrupt_stubs + (uint32_t)v * 16;
        idt[v] = (struct idt_gate){(uint16_t)stub, 0x08, 0, 0x8E, (uint16_t)(stub >> 16)};
    }
    interrupts_load();
}

void interrupt_set_handler(uint8_t vector, interrupt_handler handler) {
    handlers[vector] = handler;
}

void pic_mask_all(void) {
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

void interrupt_dispatch(struct interrupt_frame* frame);
void interrupt_dispatch(struct interrupt_frame* frame) {
    if (handlers[frame->vector]) {
        handlers[frame->vector](frame);
        return;
    }
    guest_printf("FAIL: unexpected %s %u (error code 0x%x) at eip 0x%x\n",
                 frame->vector < 32 ? "exception" : "interrupt", frame->vector, frame->error_code,
                 frame->eip);
    guest_exit(0x7d);
}
