#pragma once

namespace godwit::hv {

// Configures the serial port and verbosity from the command line (call first).
void console_init(const char* cmdline);
// Per-CPU data is usable: log lines may name the CPU.
void console_percpu_ready();

} // namespace godwit::hv
