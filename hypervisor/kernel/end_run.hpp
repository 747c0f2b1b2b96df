#pragma once

namespace godwit::hv {

// Stops the machine: prints `godwit: halted (<why>)`, ends a Bochs run (magic breakpoint;
// a no-op on hardware) and halts this CPU forever.
[[noreturn]] void end_run(const char* why);

} // namespace godwit::hv
