// libFuzzer target for VM result files (vmm/include/godwit/vmm/vm_result.hpp). godwitd reads
// the file a VM worker wrote, and a worker runs next to a hostile guest, so the parser must
// turn anything into either a result or a godwit::Error — and what it accepts must survive a
// write/read round trip as one line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "godwit/error.hpp"
#include "godwit/vmm/vm_result.hpp"

// VmResult::from_stop (not fuzzed) names VmStop::describe, which lives with the whole device
// set in vm_platform.cpp; the parser never calls it.
std::string godwit::vmm::VmStop::describe() const {
    return "not used by the parser";
}

using namespace godwit::vmm;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    try {
        VmResult r = parse_vm_result(text, "fuzz");
        std::string again = vm_result_to_json(r);
        if (again.find('\n') != again.size() - 1 || r.message.find('\n') != std::string::npos) {
            std::abort(); // results are one line
        }
        VmResult back = parse_vm_result(again, "round trip");
        // Invalid UTF-8 in a message is replaced when written: compare the rest.
        if (back.kind != r.kind || back.exit_code != r.exit_code || back.address != r.address ||
            back.error_code != r.error_code) {
            std::abort();
        }
    } catch (const godwit::Error&) {
    }
    return 0;
}
