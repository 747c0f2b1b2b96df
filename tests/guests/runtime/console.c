/* COM1 console (16550: PC16550D data sheet register map) and a small printf. */
#include <stdarg.h>

#include "guest.h"

#define COM1 0x3f8

static spinlock console_lock;

void serial_init(void) {
    outb(COM1 + 1, 0x00); /* IER: no interrupts, the guests poll */
    outb(COM1 + 3, 0x80); /* LCR: DLAB on */
    outb(COM1 + 0, 0x01); /* divisor 1: 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* LCR: 8N1, DLAB off */
    outb(COM1 + 2, 0x07); /* FCR: FIFOs on and cleared */
    outb(COM1 + 4, 0x03); /* MCR: DTR, RTS */
}

void serial_putc(char c) {
    /* LSR bit 5 (THRE); bounded so a missing UART cannot hang the guest. */
    for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); ++i) {
        cpu_relax();
    }
    outb(COM1, (uint8_t)c);
}

static void put_raw(const char* s) {
    for (; *s; ++s) {
        if (*s == '\n') {
            serial_putc('\r');
        }
        serial_putc(*s);
    }
}

void serial_write(const char* s) {
    spin_lock(&console_lock);
    put_raw(s);
    spin_unlock(&console_lock);
}

/* 64-bit division by 10 with 32-bit divl steps: there is no 32-bit libgcc to call. */
static uint32_t divide_by_10(uint64_t* value) {
    uint32_t high = (uint32_t)(*value >> 32), low = (uint32_t)*value;
    uint32_t q_high = high / 10, remainder = high % 10, q_low;
    __asm__("divl %4" : "=a"(q_low), "=d"(remainder) : "a"(low), "d"(remainder), "r"(10u));
    *value = ((uint64_t)q_high << 32) | q_low;
    return remainder;
}

static char* format_unsigned(char* end, uint64_t v, unsigned base, int width) {
    char* p = end;
    *--p = 0;
    do {
        unsigned digit;
        if (base == 16) {
            digit = (unsigned)(v & 0xf);
            v >>= 4;
        } else {
            digit = divide_by_10(&v);
        }
        *--p = (char)(digit < 10 ? '0' + digit : 'a' + digit - 10);
        --width;
    } while (v != 0);
    while (width-- > 0) {
        *--p = '0';
    }
    return p;
}

void guest_printf(const char* fmt, ...) {
    char buf[32];
    va_list ap;
    va_start(ap, fmt);
    spin_lock(&console_lock);
    for (const char* f = fmt; *f; ++f) {
        if (*f != '%') {
            char one[2] = {*f, 0};
            put_raw(one);
            continue;
        }
        ++f;
        int width = 0;
        while (*f >= '0' && *f <= '9') {
            width = width * 10 + (*f++ - '0');
        }
        bool is_long_long = false;
        if (f[0] == 'l' && f[1] == 'l') {
            is_long_long = true;
            f += 2;
        }
        switch (*f) {
        case 's': {
            const char* s = va_arg(ap, const char*);
            put_raw(s ? s : "(null)");
            break;
        }
        case 'c': {
            char one[2] = {(char)va_arg(ap, int), 0};
            put_raw(one);
            break;
        }
        case 'd': {
            int v = va_arg(ap, int);
            if (v < 0) {
                put_raw("-");
            }
            put_raw(format_unsigned(buf + sizeof buf, v < 0 ? -(int64_t)v : v, 10, width));
            break;
        }
        case 'u':
        case 'x': {
            uint64_t v = is_long_long ? va_arg(ap, uint64_t) : va_arg(ap, uint32_t);
            put_raw(format_unsigned(buf + sizeof buf, v, *f == 'x' ? 16 : 10, width));
            break;
        }
        case '%':
            put_raw("%");
            break;
        default:
            put_raw("?");
            break;
        }
    }
    spin_unlock(&console_lock);
    va_end(ap);
}

void spin_lock(spinlock* l) {
    while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE) != 0) {
        cpu_relax();
    }
}

void spin_unlock(spinlock* l) {
    __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}
