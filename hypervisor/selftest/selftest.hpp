// Built-in self-test guests, run when the command line says `selftest`. Each test prints
// exactly one line `SELFTEST <name> PASS|FAIL` and the run ends with
// `SELFTEST RESULT PASS|FAIL` (tests/hv/ reads these lines).
#pragma once

namespace godwit::hv {

// Runs every self-test on the current (bootstrap) CPU, using run_on_all_cpus for the
// per-CPU ones. Returns true when all passed.
bool run_selftests();

} // namespace godwit::hv
