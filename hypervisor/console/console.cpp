// Console: formatted lines to the serial port, serialized across CPUs, kept in a ring that
// the root partition will read through GODWIT_HC_CONSOLE_READ.
#include "kernel/console.hpp"

#include "console/console_setup.hpp"
#include "console/serial.hpp"
#include "kernel/percpu.hpp"
#include "kernel/spinlock.hpp"
#include "lib/format.hpp"
#include "platform/cmdline.hpp"

namespace godwit::hv {
namespace {

SpinLock console_lock;
LogLevel verbosity = LogLevel::info;
bool percpu_ready = false;

constexpr usize ring_size = 64 * 1024;
char ring[ring_size];
u64 ring_written = 0; // bytes since boot

void emit_locked(const char* text, usize length) {
    serial_write(text, length);
    for (usize i = 0; i < length; ++i)
        ring[(ring_written + i) % ring_size] = text[i];
    __atomic_store_n(&ring_written, ring_written + length, __ATOMIC_RELEASE);
}

const char* level_name(LogLevel level) {
    switch (level) {
    case LogLevel::error:
        return "ERROR";
    case LogLevel::warn:
        return "WARN";
    case LogLevel::info:
        return "info";
    case LogLevel::debug:
        return "debug";
    }
    return "?";
}

} // namespace

void console_init(const char* cmdline) {
    u16 port = 0x3F8;
    u32 baud = 115200;
    char value[32];
    if (cmdline_value(cmdline, "serial", value, sizeof value)) {
        u64 p = 0, b = 0;
        const char* rest = nullptr;
        if (parse_u64(value, p, &rest) && p <= 0xFFFF) {
            port = static_cast<u16>(p);
            if (*rest == ',' && parse_u64(rest + 1, b) && b > 0 && b <= 115200)
                baud = static_cast<u32>(b);
        }
    }
    serial_init(port, baud);
    if (cmdline_value(cmdline, "loglevel", value, sizeof value)) {
        if (str_equal(value, "error"))
            verbosity = LogLevel::error;
        else if (str_equal(value, "warn"))
            verbosity = LogLevel::warn;
        else if (str_equal(value, "info"))
            verbosity = LogLevel::info;
        else if (str_equal(value, "debug"))
            verbosity = LogLevel::debug;
    }
}

void console_ring(const char*& text, u64& size, u64& written) {
    text = ring;
    size = ring_size;
    written = __atomic_load_n(&ring_written, __ATOMIC_ACQUIRE);
}

void console_percpu_ready() {
    percpu_ready = true;
}

void console_printf(const char* fmt, ...) {
    char line[512];
    va_list args;
    va_start(args, fmt);
    usize n = format_to(line, sizeof line, fmt, args);
    va_end(args);
    if (n >= sizeof line)
        n = sizeof line - 1;
    SpinLockGuard guard(console_lock);
    emit_locked(line, n);
}

void log(LogLevel level, const char* fmt, ...) {
    if (static_cast<u8>(level) > static_cast<u8>(verbosity))
        return;
    char line[512];
    usize prefix = format_to(
        line, sizeof line, "[cpu%u] %s: ", percpu_ready ? this_cpu().index : 0u, level_name(level));
    va_list args;
    va_start(args, fmt);
    usize n = prefix + format_to(line + prefix, sizeof line - prefix - 1, fmt, args);
    va_end(args);
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    SpinLockGuard guard(console_lock);
    emit_locked(line, n);
}

} // namespace godwit::hv
