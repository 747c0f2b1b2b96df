// 16550 UART output (polled). Port and baud from the command line: serial=0x2f8,115200.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

void serial_init(u16 port, u32 baud);
void serial_write(const char* text, usize length);
// Waits until everything written has left the UART.
void serial_flush();

} // namespace godwit::hv
