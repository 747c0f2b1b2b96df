// godwit-vm-run: one VM in a Godwit guest partition. Loads a Multiboot kernel into guest
// RAM with the VMM's device set (COM1, debug exit, fw_cfg, PCI host, ACPI, PM timer), runs
// its vCPUs through /dev/godwit until the VM stops, and prints why.
//   godwit-vm-run --kernel hello.elf [--memory 16] [--vcpus 1] [--cmdline ...] [--console F]
// Exit status: 0 when the VM stopped through the debug-exit port with value 0 or powered
// off; 1 for any other stop (the reason is printed); godwit::Error codes for setup errors.
#include <boost/program_options.hpp>

#include <cstdio>
#include <iostream>

#include "godwit/error.hpp"
#include "godwit/vmm/godwit_backend.hpp"
#include "godwit/vmm/vm_platform.hpp"
#include "godwit/vmm/vm_runner.hpp"

namespace po = boost::program_options;
using namespace godwit;

int main(int argc, char** argv) {
    po::options_description options("godwit-vm-run options");
    options.add_options()("help,h", "this help")("kernel", po::value<std::string>()->required(),
                                                 "Multiboot1/2 kernel (ELF)")(
        "memory", po::value<std::uint64_t>()->default_value(16),
        "guest RAM in MiB")("vcpus", po::value<unsigned>()->default_value(1), "virtual CPUs")(
        "cmdline", po::value<std::string>()->default_value(""),
        "kernel command line")("console", po::value<std::string>()->default_value(""),
                               "also write COM1 output to this file")(
        "device", po::value<std::string>()->default_value("/dev/godwit"),
        "the root driver's device");
    try {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, options), vm);
        if (vm.count("help")) {
            std::cout << "Runs one VM in a Godwit guest partition (from the root partition).\n"
                      << options;
            return 0;
        }
        po::notify(vm);
        vmm::VmDefinition def;
        def.name = "vm-run";
        def.vcpus = vm["vcpus"].as<unsigned>();
        def.memory_mib = vm["memory"].as<std::uint64_t>();
        def.kernel = vm["kernel"].as<std::string>();
        def.cmdline = vm["cmdline"].as<std::string>();
        vmm::VmPlatform::Options popts;
        popts.console_log = vm["console"].as<std::string>();
        popts.console_stream = [](std::uint8_t byte) {
            std::fputc(byte, stdout);
            if (byte == '\n')
                std::fflush(stdout);
        };
        vmm::VmPlatform platform(def, popts);
        vmm::GodwitBackend backend(platform.memory(), def.vcpus, vm["device"].as<std::string>());
        const auto& states = platform.initial_vcpu_states();
        for (unsigned i = 0; i < def.vcpus && i < states.size(); ++i) {
            backend.set_state(i, states[i]);
            // Read the state back from the hypervisor: what migration will rely on.
            vmm::VcpuState back = backend.get_state(i);
            const vmm::VcpuState& want = states[i];
            bool same = back.rip == want.rip && back.rax == want.rax && back.rbx == want.rbx &&
                        back.rsp == want.rsp && back.cr0 == want.cr0 &&
                        back.cs.selector == want.cs.selector && back.cs.base == want.cs.base &&
                        back.efer == want.efer;
            std::printf("godwit-vm-run: vCPU %u state read back from the hypervisor: rip=%#llx "
                        "cr0=%#llx cs=%#x eax=%#llx ebx=%#llx %s\n",
                        i, static_cast<unsigned long long>(back.rip),
                        static_cast<unsigned long long>(back.cr0), back.cs.selector,
                        static_cast<unsigned long long>(back.rax),
                        static_cast<unsigned long long>(back.rbx),
                        same ? "(matches)" : "(MISMATCH)");
            if (!same)
                throw Error(ErrorCode::internal, "vCPU state read back differs from what was set");
        }
        vmm::VmRunner runner(platform, backend, def.vcpus);
        vmm::VmStop stop = runner.run();
        std::fflush(stdout);
        std::cout << "godwit-vm-run: VM stopped: " << stop.describe() << std::endl;
        bool clean = (stop.reason == vmm::VmStop::Reason::debug_exit && stop.result == 1) ||
                     stop.reason == vmm::VmStop::Reason::power_off;
        return clean ? 0 : 1;
    } catch (const Error& e) {
        std::cerr << "godwit-vm-run: " << e.what() << std::endl;
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        std::cerr << "godwit-vm-run: " << e.what() << std::endl;
        return 2;
    }
}
