#include "godwit/vmm/vm_platform.hpp"

#include "godwit/vmm/acpi.hpp"

#include <unistd.h>

#include "test_support.hpp"

using namespace godwit::vmm;
using godwit::ErrorCode;

namespace {
const std::string hello_elf = std::string(GODWIT_GUEST_DIR) + "/hello.elf";

VmDefinition hello_definition(unsigned vcpus) {
    VmDefinition d;
    d.name = "hello";
    d.vcpus = vcpus;
    d.memory_mib = 64;
    d.kernel = hello_elf;
    d.cmdline = "answer=42";
    return d;
}

std::uint64_t port_read(VmPlatform& vm, std::uint64_t port, std::uint8_t size) {
    IoAccess a{port, size, false, 0};
    vm.handle_port_io(a);
    return a.data;
}

void port_write(VmPlatform& vm, std::uint64_t port, std::uint8_t size, std::uint64_t value) {
    IoAccess a{port, size, true, value};
    vm.handle_port_io(a);
}
} // namespace

TEST(VmPlatform, BuildsTheMachineForAMultibootGuest) {
    VmPlatform vm(hello_definition(2), {});
    EXPECT_EQ(vm.kernel_format(), KernelFormat::multiboot1);
    ASSERT_EQ(vm.initial_vcpu_states().size(), 2u);
    const VcpuState& bsp = vm.initial_vcpu_states()[0];
    EXPECT_EQ(bsp.rax, multiboot1_boot_magic);
    EXPECT_EQ(bsp.rip, vm.loaded().bsp.rip);
    EXPECT_EQ(vm.initial_vcpu_states()[1].activity, ActivityState::wait_for_sipi);

    // fw_cfg as the guest runtime reads it (tests/guests/runtime/runtime.c).
    port_write(vm, 0x510, 2, FwCfg::key_nb_cpus);
    EXPECT_EQ(port_read(vm, 0x511, 1), 2u);
    port_write(vm, 0x510, 2, FwCfg::key_ram_size);
    std::uint64_t ram = 0;
    for (int i = 0; i < 8; ++i) {
        ram |= port_read(vm, 0x511, 1) << (8 * i);
    }
    EXPECT_EQ(ram, 64ull << 20);
    port_write(vm, 0x510, 2, FwCfg::key_file_dir);
    std::uint32_t files = 0;
    for (int i = 0; i < 4; ++i) {
        files = (files << 8) | static_cast<std::uint32_t>(port_read(vm, 0x511, 1));
    }
    EXPECT_EQ(files, 1u); // etc/e820 (big-endian count)
    // The data port is one byte wide: a 4-byte access there is not fw_cfg's.
    EXPECT_EQ(port_read(vm, 0x511, 4), 0xffffffffu);

    // PCI: host bridge, then nothing; unclaimed ports float high.
    port_write(vm, 0xcf8, 4, 0x80000000);
    EXPECT_EQ(port_read(vm, 0xcfc, 2), 0x8086u);
    port_write(vm, 0xcf8, 4, 0x80000800);
    EXPECT_EQ(port_read(vm, 0xcfc, 2), 0xffffu);
    EXPECT_EQ(port_read(vm, 0x2f8, 1), 0xffu);

    // ACPI: the RSDP is where the tables were placed, inside the BIOS area.
    std::string rsdp(8, '\0');
    vm.memory().read(vm.acpi().rsdp, std::as_writable_bytes(std::span{rsdp.data(), 8}));
    EXPECT_EQ(rsdp, "RSD PTR ");
    EXPECT_GT(port_read(vm, VmPlatform::pm_base + 8, 4) + 1, 0u); // PM timer readable
    EXPECT_FALSE(vm.stop());
}

TEST(VmPlatform, Com1GoesToTheLogFileAndTheConsoleStream) {
    char tmpl[] = "/tmp/godwit-console-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    ::close(fd);
    std::string streamed;
    {
        VmPlatform vm(
            hello_definition(1),
            {tmpl, [&](std::uint8_t b) { streamed.push_back(static_cast<char>(b)); }, {}});
        for (char c : std::string("hello: PASS\n")) {
            port_write(vm, 0x3f8, 1, static_cast<std::uint8_t>(c));
        }
    }
    EXPECT_EQ(streamed, "hello: PASS\n");
    auto logged = read_test_file(tmpl);
    EXPECT_EQ(std::string(logged.begin(), logged.end()), "hello: PASS\n");
    ::unlink(tmpl);
}

TEST(VmPlatform, StopsOnDebugExitAndPowerOff) {
    VmPlatform vm(hello_definition(1), {});
    port_write(vm, 0xf4, 4, 0);
    ASSERT_TRUE(vm.stop());
    EXPECT_EQ(vm.stop()->reason, VmStop::Reason::debug_exit);
    EXPECT_EQ(vm.stop()->result, 1u);
    EXPECT_NE(vm.stop()->describe().find("result 1"), std::string::npos);

    VmPlatform off(hello_definition(1), {});
    port_write(off, VmPlatform::pm_base + 4, 2, 1u << 13);
    ASSERT_TRUE(off.stop());
    EXPECT_EQ(off.stop()->reason, VmStop::Reason::power_off);
}

TEST(VmPlatform, AccessOutsideRamStopsTheVm) {
    // The isolation guest writes 16 MiB past the end of RAM (tests/guests/isolation.c).
    VmPlatform vm(hello_definition(1), {});
    IoAccess write{(64ull << 20) + 0x1000000, 4, true, 0x5a5a5a5a};
    vm.handle_mmio(write);
    ASSERT_TRUE(vm.stop());
    EXPECT_EQ(vm.stop()->reason, VmStop::Reason::outside_ram);
    EXPECT_EQ(vm.stop()->address, 0x5000000u);
    EXPECT_NE(vm.stop()->describe().find("outside its RAM"), std::string::npos);
}

TEST(VmPlatform, MissingKernelIsNotFound) {
    VmDefinition d = hello_definition(1);
    d.kernel = "/nonexistent/guest.elf";
    expect_error(ErrorCode::not_found, "does not exist", [&] { VmPlatform vm(d, {}); });
}

// Every test guest must load unchanged into a Godwit VM, not only under QEMU.
TEST(VmPlatform, LoadsEveryTestGuest) {
    for (const char* guest :
         {"hello", "cpuid_msr", "apic_timer", "smp", "isolation", "dirty", "acpi"}) {
        VmDefinition d = hello_definition(2);
        d.kernel = std::string(GODWIT_GUEST_DIR) + "/" + guest + ".elf";
        VmPlatform vm(d, {});
        EXPECT_EQ(vm.kernel_format(), KernelFormat::multiboot1) << guest;
        EXPECT_EQ(vm.loaded().kernel_start, 0x100000u) << guest;
        EXPECT_LT(vm.loaded().kernel_end, 4u << 20) << guest;
        EXPECT_EQ(vm.initial_vcpu_states()[0].rip & ~0xfffffu, 0x100000u) << guest;
    }
}

// Device state moves to a second platform built from the same definition (migration) and
// the guest sees the same registers there.
TEST(VmPlatform, DeviceStateSurvivesSaveAndRestore) {
    VmPlatform source(hello_definition(2), {});
    port_write(source, 0x3fb, 1, 0x80); // DLAB
    port_write(source, 0x3f8, 1, 0x01); // divisor 1
    port_write(source, 0x3fb, 1, 0x03); // 8N1
    port_write(source, 0x3fa, 1, 0x07); // FIFOs on
    port_write(source, 0x3fc, 1, 0x0b); // DTR RTS OUT2
    port_write(source, 0x3f9, 1, 0x01); // RX interrupt
    port_write(source, 0x3ff, 1, 0x5c); // scratch
    const std::uint8_t typed[] = {'a', 'b'};
    source.com1().receive(typed);
    port_write(source, 0x510, 2, FwCfg::key_signature);
    EXPECT_EQ(port_read(source, 0x511, 1), 'Q'); // mid-item
    port_write(source, 0xcf8, 4, 0x80000004);
    port_write(source, VmPlatform::pm_base + 2, 2, 0x0100); // PM1 enable: power button

    std::string state = source.save_device_state();
    VmPlatform target(hello_definition(2), {});
    target.restore_device_state(state);
    EXPECT_EQ(target.com1().divisor(), 1);
    EXPECT_TRUE(target.com1().interrupt_asserted());
    EXPECT_EQ(port_read(target, 0x3fa, 1), 0xc4u); // FIFOs, RX data pending
    EXPECT_EQ(port_read(target, 0x3f8, 1), 'a');
    EXPECT_EQ(port_read(target, 0x3f8, 1), 'b');
    EXPECT_EQ(port_read(target, 0x3ff, 1), 0x5cu);
    EXPECT_EQ(port_read(target, 0x511, 1), 'E'); // continues inside the selected item
    EXPECT_EQ(port_read(target, 0xcf8, 4), 0x80000004u);
    EXPECT_EQ(port_read(target, VmPlatform::pm_base + 2, 2), 0x0100u);
    expect_error(ErrorCode::invalid_input, "not a VmDeviceState",
                 [&] { target.restore_device_state(std::string("\xff\xff\xff", 3)); });
    expect_error(ErrorCode::unsupported, "version 0", [&] { target.restore_device_state(""); });
}

TEST(AcpiPmState, TimerContinuesAfterRestore) {
    std::uint64_t now = 5'000'000'000;
    AcpiPmDevice source(true, [&] { return now; });
    now += 3'000'000'000;
    AcpiPmDevice::State s = source.save_state();
    EXPECT_EQ(s.timer, 10'738'635u); // 3 s at 3.579545 MHz
    std::uint64_t other_clock = 77;  // the destination host's clock is unrelated
    AcpiPmDevice target(true, [&] { return other_clock; });
    target.restore_state(s);
    EXPECT_EQ(target.timer_value(), s.timer);
    other_clock += 1'000'000'000;
    EXPECT_EQ(target.timer_value(), s.timer + 3'579'545u);
}
