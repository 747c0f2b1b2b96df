// Weak stand-ins for the VT-x component (arch/x86/vmx, selftest). When that component is
// linked in, its strong definitions replace these. They fail honestly: a hypervisor without
// VT-x support built in cannot run anything.
#include "arch/x86/vmx/vmx_cpu.hpp"
#include "kernel/console.hpp"
#include "selftest/selftest.hpp"

namespace godwit::hv {

[[gnu::weak]] bool vmx_check_support(const char** reason) {
    *reason = "VT-x support is not built into this image";
    return false;
}

[[gnu::weak]] bool vmx_enable_on_this_cpu() {
    return false;
}

[[gnu::weak]] bool run_selftests() {
    console_printf("SELFTEST RESULT FAIL no self-tests are linked into this image\n");
    return false;
}

} // namespace godwit::hv
