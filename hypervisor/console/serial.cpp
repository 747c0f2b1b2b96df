#include "console/serial.hpp"

#include "arch/x86/intrinsics.hpp"

namespace godwit::hv {
namespace {

u16 com_port = 0x3F8;
// 16550 registers (offsets from the base port).
constexpr u16 reg_data = 0, reg_ier = 1, reg_fcr = 2, reg_lcr = 3, reg_mcr = 4, reg_lsr = 5;
constexpr u8 lsr_tx_empty = 0x20;

} // namespace

void serial_init(u16 port, u32 baud) {
    com_port = port;
    u32 divisor = baud == 0 ? 1 : 115200 / baud;
    if (divisor == 0)
        divisor = 1;
    x86::outb(port + reg_ier, 0x00); // no interrupts
    x86::outb(port + reg_lcr, 0x80); // DLAB on
    x86::outb(port + reg_data, static_cast<u8>(divisor));
    x86::outb(port + reg_ier, static_cast<u8>(divisor >> 8));
    x86::outb(port + reg_lcr, 0x03); // 8N1, DLAB off
    x86::outb(port + reg_fcr, 0xC7); // FIFO on, cleared
    x86::outb(port + reg_mcr, 0x03); // DTR, RTS
}

void serial_write(const char* text, usize length) {
    for (usize i = 0; i < length; ++i) {
        if (text[i] == '\n') {
            while ((x86::inb(com_port + reg_lsr) & lsr_tx_empty) == 0)
                x86::pause();
            x86::outb(com_port + reg_data, '\r');
        }
        // A port with nothing behind it reads 0xFF: bounded wait so a missing UART never hangs us.
        for (int spins = 0; spins < 100000 && (x86::inb(com_port + reg_lsr) & lsr_tx_empty) == 0;
             ++spins) {
            x86::pause();
        }
        x86::outb(com_port + reg_data, static_cast<u8>(text[i]));
    }
}

} // namespace godwit::hv

namespace godwit::hv {

void serial_flush() {
    // LSR bit 6: transmitter holding register and shift register both empty.
    for (int spins = 0; spins < 1000000 && (x86::inb(com_port + reg_lsr) & 0x40) == 0; ++spins) {
        x86::pause();
    }
}

} // namespace godwit::hv
