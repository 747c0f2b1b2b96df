// The bootstrap processor's path from the 64-bit entry to a running hypervisor
// (docs/hypervisor-boot.md).
#include "arch/x86/intrinsics.hpp"
#include "arch/x86/vmx/vmx_cpu.hpp"
#include "console/console_setup.hpp"
#include "console/serial.hpp"
#include "kernel/boot_info.hpp"
#include "kernel/console.hpp"
#include "kernel/end_run.hpp"
#include "kernel/percpu.hpp"
#include "kernel/percpu_setup.hpp"
#include "kernel/smp.hpp"
#include "kernel/smp_setup.hpp"
#include "memory/frame_allocator.hpp"
#include "memory/memory_init.hpp"
#include "platform/acpi.hpp"
#include "platform/cmdline.hpp"
#include "platform/lapic.hpp"
#include "platform/multiboot2.hpp"
#include "root/root_partition.hpp"
#include "selftest/selftest.hpp"

extern "C" char __image_start[], __image_end[];
extern "C" void (*__init_array_start[])();
extern "C" void (*__init_array_end[])();
extern "C" char boot_stack_top[];

namespace godwit::hv {
namespace {

Multiboot2Info mb2;
BootInfo info;
MadtInfo madt;
root::Range hidden[2]; // hypervisor memory: image, pool
constexpr u64 default_pool_mib = 32;

// All RAM is identity-mapped, so a physical address is directly readable.
class IdentityReader final : public PhysicalMemoryReader {
  public:
    const u8* read(u64 address, u64 length) const override {
        if (address == 0 || address + length < address || address + length > (4ull << 30))
            return nullptr;
        return reinterpret_cast<const u8*>(address);
    }
};

u64 find_rsdp(const IdentityReader& memory) {
    // The EBDA's first KiB, then the BIOS area (ACPI 6.x, 5.2.5.1).
    u64 ebda = static_cast<u64>(*reinterpret_cast<const volatile u16*>(0x40E)) << 4;
    if (ebda >= 0x80000 && ebda < 0xA0000) {
        if (u64 r = rsdp_scan(memory, ebda, 1024))
            return r;
    }
    return rsdp_scan(memory, 0xE0000, 0x20000);
}

void vmx_enable_work(void* failures) {
    if (!vmx_enable_on_this_cpu())
        __atomic_fetch_add(static_cast<u32*>(failures), 1, __ATOMIC_RELAXED);
}

} // namespace

const BootInfo& boot_info() {
    return info;
}
bool cmdline_has(const char* word) {
    return cmdline_has_word(info.cmdline, word);
}

[[noreturn]] void end_run(const char* why) {
    console_printf("godwit: halted (%s)\n", why);
    serial_flush();
    x86::bochs_magic_break();
    for (;;) {
        x86::cli();
        x86::hlt();
    }
}

extern "C" [[noreturn]] void kernel_main(u32 magic, u32 info_address) {
    for (auto* ctor = __init_array_start; ctor != __init_array_end; ++ctor)
        (*ctor)();

    const char* parse_error =
        magic == multiboot2_bootloader_magic
            ? parse_multiboot2(reinterpret_cast<const u8*>(static_cast<u64>(info_address)),
                               1u << 20, mb2)
            : "not started by a Multiboot2 loader";
    console_init(parse_error == nullptr ? mb2.cmdline : "");
    console_printf("\ngodwit %s: hypervisor starting\n", GODWIT_VERSION);
    if (parse_error != nullptr) {
        console_printf("godwit: refusing to start: bad boot information: %s\n", parse_error);
        end_run("bad boot information");
    }
    info.cmdline = mb2.cmdline;
    info.image_start = PhysAddr{reinterpret_cast<u64>(__image_start)};
    info.image_end = PhysAddr{reinterpret_cast<u64>(__image_end)};
    for (u32 i = 0; i < mb2.module_count && i < 8; ++i) {
        info.modules[i] =
            BootModule{PhysAddr{mb2.modules[i].start},
                       u64{mb2.modules[i].end} - mb2.modules[i].start, mb2.modules[i].cmdline};
    }
    info.module_count = mb2.module_count < 8 ? mb2.module_count : 8;
    log(LogLevel::info, "command line: '%s'", info.cmdline);
    log(LogLevel::info, "image %p-%p, %u boot modules", __image_start, __image_end,
        info.module_count);

    lapic_enable_this_cpu();
    percpu_init_this_cpu(0, lapic_id(), reinterpret_cast<u64>(boot_stack_top));
    console_percpu_ready();

    memory_init(mb2, info_address);
    // The hypervisor's own memory: a pool (hv_memory=MiB, default 32) plus the image. All
    // other RAM belongs to the root partition.
    u64 pool_mib = default_pool_mib;
    char value[16];
    if (cmdline_value(info.cmdline, "hv_memory", value, sizeof(value)) &&
        (!parse_u64(value, pool_mib) || pool_mib < 8 || pool_mib > 4096 || pool_mib % 2 != 0)) {
        log(LogLevel::warn, "hv_memory=%s is not an even number of MiB in 8-4096; using %lu", value,
            default_pool_mib);
        pool_mib = default_pool_mib;
    }
    MemoryRange modules[Multiboot2Info::max_modules];
    for (u32 i = 0; i < mb2.module_count; ++i)
        modules[i] =
            MemoryRange{mb2.modules[i].start, u64{mb2.modules[i].end} - mb2.modules[i].start};
    u64 pool = memory_reserve_pool(mb2, pool_mib << 20, modules, mb2.module_count);
    if (pool == 0) {
        console_printf("godwit: refusing to start: no %lu MiB RAM region below 4 GiB for the "
                       "hypervisor pool\n",
                       pool_mib);
        end_run("not enough memory");
    }
    hidden[0] = root::Range{align_down(reinterpret_cast<u64>(__image_start), page_size),
                            align_up(reinterpret_cast<u64>(__image_end), page_size) -
                                align_down(reinterpret_cast<u64>(__image_start), page_size)};
    hidden[1] = root::Range{pool, pool_mib << 20};
    map_all_ram(mb2);

    IdentityReader memory;
    u64 rsdp = find_rsdp(memory);
    info.rsdp = PhysAddr{rsdp};
    u64 rsdp_for_tables = rsdp != 0 ? rsdp : reinterpret_cast<u64>(mb2.rsdp_copy);
    u32 apic_ids_fallback[1] = {this_cpu().apic_id};
    const u32* apic_ids = apic_ids_fallback;
    u32 apic_count = 1;
    u64 madt_address = rsdp_for_tables != 0 ? acpi_find_table(memory, rsdp_for_tables, "APIC") : 0;
    const char* madt_error = madt_address != 0 ? parse_madt(memory, madt_address, madt) : "no MADT";
    if (madt_error == nullptr) {
        apic_ids = madt.apic_ids;
        apic_count = madt.cpu_count;
        log(LogLevel::info, "acpi: RSDP at 0x%lx, MADT lists %u CPUs, %u I/O APICs", rsdp,
            madt.cpu_count, madt.ioapic_count);
    } else {
        log(LogLevel::warn, "acpi: %s (RSDP 0x%lx); running on the boot CPU only", madt_error,
            rsdp);
    }

    const char* reason = nullptr;
    if (!vmx_check_support(&reason)) {
        console_printf("godwit: refusing to start: %s\n", reason);
        end_run("no usable VT-x");
    }

    u32 online = smp_start_aps(apic_ids, apic_count);
    log(LogLevel::info, "smp: %u of %u CPUs online", online, apic_count);

    u32 vmx_failures = 0;
    run_on_all_cpus(vmx_enable_work, &vmx_failures);
    if (vmx_failures != 0) {
        console_printf("godwit: VMX could not be enabled on %u CPU(s)\n", vmx_failures);
    }
    FrameStats stats = frame_stats();
    if (cmdline_has("selftest")) {
        bool ok = run_selftests();
        end_run(ok ? "self-tests passed" : "self-tests failed");
    }
    console_printf("godwit: ready (%u CPUs, %lu MiB free in the hypervisor pool)\n", online,
                   (stats.free_frames * page_size) >> 20);
    if (info.module_count == 0) {
        console_printf("godwit: no root kernel among the boot modules; nothing to run\n");
        end_run("no root partition");
    }
    const char* why = launch_root_partition(mb2, rsdp, hidden, 2);
    console_printf("godwit: cannot start the root partition: %s\n", why);
    end_run("root partition did not start");
}

} // namespace godwit::hv
