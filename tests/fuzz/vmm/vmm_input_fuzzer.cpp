// libFuzzer target for the VMM's untrusted inputs: kernel images handed to the Multiboot
// loaders, vCPU and device state arriving in a migration stream or saved-VM file, and VM
// definition files. The first
// byte picks the parser; every failure must be a godwit::Error, never a crash, and a
// successful load must respect the guest's RAM and the Multiboot entry contract.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "godwit/error.hpp"
#include "godwit/vmm/guest_memory.hpp"
#include "godwit/vmm/multiboot.hpp"
#include "godwit/vmm/vcpu_state.hpp"
#include "godwit/vmm/vm_definition.hpp"
#include "godwit/vmm/vm_platform.hpp"

using namespace godwit::vmm;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    std::span<const std::uint8_t> input(data + 1, size - 1);
    try {
        switch (data[0] % 4) {
        case 0: {
            static GuestMemory memory(8 << 20);
            BootImage image{input, "fuzz", {{std::vector<std::uint8_t>(17, 1), "m"}}, {}};
            LoadedGuest g = load_kernel(memory, image);
            if (g.bsp.rip > 0xffffffffu ||
                !memory.contains(g.kernel_start, g.kernel_end - g.kernel_start) ||
                (g.bsp.rax != multiboot1_boot_magic && g.bsp.rax != multiboot2_boot_magic)) {
                std::abort();
            }
            break;
        }
        case 1: {
            VcpuState s = parse_vcpu_state(std::string(input.begin(), input.end()));
            if (parse_vcpu_state(serialize_vcpu_state(s)) != s) {
                std::abort(); // what parses must round-trip
            }
            break;
        }
        case 3: {
            // Device state of a VM being restored (no kernel is loaded when restoring).
            static VmPlatform platform = [] {
                VmDefinition def;
                def.name = "fuzz";
                def.vcpus = 2;
                def.memory_mib = 4;
                VmPlatform::Options options;
                options.restoring = true;
                return VmPlatform(def, options);
            }();
            platform.restore_device_state(std::string(input.begin(), input.end()));
            std::string saved = platform.save_device_state();
            platform.restore_device_state(saved);
            if (platform.save_device_state() != saved) {
                std::abort(); // what restores must save back the same
            }
            break;
        }
        default: {
            VmDefinition d = parse_vm_definition(std::string(input.begin(), input.end()), "fuzz");
            if (parse_vm_definition(vm_definition_to_json(d), "again") != d) {
                std::abort();
            }
            break;
        }
        }
    } catch (const godwit::Error&) {
    }
    return 0;
}
