// Hypervisor console: printf-style formatted output to the serial port (16550, COM1 by
// default; `serial=0x2f8,115200` on the command line chooses another), with log levels.
// Supported conversions: %d %i %u %x %X %p %s %c %% with l/ll/z length modifiers,
// width, zero-padding and '-' (left-justify).
#pragma once

#include "lib/types.hpp"

namespace godwit::hv {

enum class LogLevel : u8 { error = 0, warn = 1, info = 2, debug = 3 };

// Prints unconditionally (no prefix). Safe to call from any CPU: a spinlock serializes lines.
void console_printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Prints "[cpuN] LEVEL: message\n" when `level` is at or above the configured verbosity
// (command line `loglevel=error|warn|info|debug`, default info).
void log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// The console ring (the last 64 KiB of output): byte p of the output since boot is at
// text[p % size] while p >= written - size. Read by the CONSOLE_READ hypercall.
void console_ring(const char*& text, u64& size, u64& written);

} // namespace godwit::hv
