// Launching the root partition (Linux boot protocol, Documentation/arch/x86/boot.rst, 64-bit
// entry): stage the initramfs high, move the protected-mode kernel to its load address,
// build boot_params, identity page tables and a GDT in low memory, build the root's EPT
// (identity, minus hypervisor memory) and enter the kernel on the BSP; every AP gets a root
// vCPU parked in wait-for-SIPI so Linux can start it with INIT-SIPI-SIPI as on bare metal
// (the INIT and STARTUP IPIs go through root_apic.hpp).
#include "root/root_partition.hpp"

#include "arch/x86/intrinsics.hpp"
#include "arch/x86/mtrr_read.hpp"
#include "arch/x86/vmx/vmx_exit.hpp"
#include "arch/x86/vmx/vmx_exit_handlers.hpp"
#include "arch/x86/vmx/vmx_state.hpp"
#include "kernel/console.hpp"
#include "kernel/percpu.hpp"
#include "kernel/smp.hpp"
#include "memory/frame_allocator.hpp"
#include "memory/pool_table_memory.hpp"
#include "platform/tsc_calibration.hpp"
#include "root/root_apic.hpp"

extern "C" void* memcpy(void*, const void*, godwit::hv::usize);
extern "C" void* memmove(void*, const void*, godwit::hv::usize);
extern "C" void* memset(void*, int, godwit::hv::usize);

namespace godwit::hv {
namespace {

using linux_boot::BootParams;
using linux_boot::BzImage;
using linux_boot::E820Type;
using root::Range;

// Low-memory boot area (conventional RAM, clear of the BIOS data and our AP trampoline at
// 0x8000): the kernel copies boot_params and the command line out early, and replaces
// these page tables and GDT with its own within its first instructions.
constexpr u64 boot_area = 0x20000;
constexpr u64 boot_params_pa = boot_area;
constexpr u64 cmdline_pa = boot_area + 0x1000;
constexpr u64 cmdline_max = 0x1000;
constexpr u64 gdt_pa = boot_area + 0x2000;
constexpr u64 pml4_pa = boot_area + 0x3000;
constexpr u64 pdpt_pa = boot_area + 0x4000;
constexpr u64 pd_pa = boot_area + 0x5000; // 4 pages: 0-4 GiB in 2 MiB pages
constexpr u64 boot_area_size = 0x9000;

// boot.rst: __BOOT_CS = 0x10, __BOOT_DS = 0x18, flat 4 GiB.
constexpr u16 boot_cs = 0x10, boot_ds = 0x18;

RootPartition root_state;
PoolTableMemory ept_memory;
ept::EptTable root_ept(ept_memory);
VmxVcpu root_vcpus[max_cpus];

E820Type e820_type_of(u32 multiboot_type) {
    switch (multiboot_type) {
    case 1:
        return E820Type::ram;
    case 3:
        return E820Type::acpi;
    case 4:
        return E820Type::nvs;
    case 5:
        return E820Type::unusable;
    default:
        return E820Type::reserved;
    }
}

// The kernel's command line: the module string minus a leading path (GRUB versions differ
// in whether they pass the file name).
const char* kernel_cmdline(const char* s) {
    if (s == nullptr)
        return "";
    if (*s == '/') {
        while (*s != '\0' && *s != ' ')
            ++s;
        while (*s == ' ')
            ++s;
    }
    return s;
}

void build_boot_page_tables() {
    memset(reinterpret_cast<void*>(boot_area + 0x2000), 0, boot_area_size - 0x2000);
    auto* gdt = reinterpret_cast<u64*>(gdt_pa);
    gdt[boot_cs / 8] = 0x00AF9A000000FFFFull; // 64-bit code, present, DPL 0
    gdt[boot_ds / 8] = 0x00CF92000000FFFFull; // data, 4 GiB, present, DPL 0
    auto* pml4 = reinterpret_cast<u64*>(pml4_pa);
    auto* pdpt = reinterpret_cast<u64*>(pdpt_pa);
    pml4[0] = pdpt_pa | 0x3;
    for (u64 g = 0; g < 4; ++g) {
        auto* pd = reinterpret_cast<u64*>(pd_pa + g * page_size);
        pdpt[g] = (pd_pa + g * page_size) | 0x3;
        for (u64 i = 0; i < 512; ++i)
            pd[i] = ((g << 30) + (i << 21)) | 0x83; // present, writable, 2 MiB
    }
}

// MSRs a CPU's CPUID implies but it may not implement (emulators): probed with rdmsr_safe.
// IA32_MISC_ENABLE missing: virtualized for the root (intercepted in the MSR bitmap).
// MCG_CAP/MCG_STATUS missing while CPUID claims MCA: MCE/MCA hidden from CPUID, else
// Linux's machine-check init panics ("MCA architectural violation").
void intercept_msr(u8* msr_bitmap, u32 msr) { // read-low and write-low bitmaps
    msr_bitmap[msr / 8] |= static_cast<u8>(1u << (msr % 8));
    msr_bitmap[2048 + msr / 8] |= static_cast<u8>(1u << (msr % 8));
}

// Linux trusts CPUID leaf 0x15 for the TSC frequency and then never calibrates. When the
// PIT disagrees with it by more than 2 % (Bochs: 3.5 GHz advertised, one tick per emulated
// instruction measured), the root and the guests are told the measured frequency; else 0.
u64 probe_tsc_frequency() {
    u32 max_leaf = x86::cpuid(0).eax;
    auto values = [](x86::CpuidResult r) { return CpuidValues{r.eax, r.ebx, r.ecx, r.edx}; };
    CpuidValues leaf15 = max_leaf >= 0x15 ? values(x86::cpuid(0x15, 0)) : CpuidValues{};
    CpuidValues leaf16 = max_leaf >= 0x16 ? values(x86::cpuid(0x16, 0)) : CpuidValues{};
    u64 advertised = advertised_tsc_hz(max_leaf, leaf15, leaf16);
    u64 measured = measure_tsc_hz();
    set_host_tsc_hz(measured != 0 ? measured : advertised);
    if (measured == 0) {
        log(LogLevel::info, "root: no PIT to check the TSC frequency against; CPUID says %lu kHz",
            advertised / 1000);
        return 0;
    }
    if (max_leaf < 0x15 || !tsc_frequency_disagrees(advertised, measured)) {
        log(LogLevel::info, "root: TSC %lu kHz measured against the PIT (CPUID says %lu kHz)",
            measured / 1000, advertised / 1000);
        return 0;
    }
    log(LogLevel::warn,
        "root: CPUID says the TSC runs at %lu kHz but it measures %lu kHz against the PIT: "
        "CPUID leaves 0x15/0x16 report the measured frequency to the root and guests",
        advertised / 1000, measured / 1000);
    return measured;
}

// ADOX's known answers (Vol. 2A ADOX: OF is the unsigned carry): ~0 + 1 carries out, and
// 0x7fff... + 1 (a signed overflow) does not. Only when CPUID offers ADX.
bool adox_is_broken() {
    if (x86::cpuid(0).eax < 7 || ((x86::cpuid(7, 0).ebx >> 19) & 1) == 0)
        return false;
    u64 a = ~0ull, b = 0x7FFFFFFFFFFFFFFFull, c = 5;
    bool carry_a = x86::adox(a, 1, false);
    bool carry_b = x86::adox(b, 1, false);
    bool carry_c = x86::adox(c, 2, true);
    return !(a == 0 && carry_a && b == 0x8000000000000000ull && !carry_b && c == 8 && !carry_c);
}

void probe_msrs(u8* msr_bitmap) {
    constexpr u32 msr_misc_enable = 0x1A0, msr_bios_sign_id = 0x8B;
    u64 value = 0;
    if (!x86::rdmsr_safe(msr_misc_enable, value)) {
        intercept_msr(msr_bitmap, msr_misc_enable);
        log(LogLevel::info, "root: CPU lacks IA32_MISC_ENABLE: the root gets a virtual one");
    }
    if (!x86::rdmsr_safe(msr_bios_sign_id, value)) {
        intercept_msr(msr_bitmap, msr_bios_sign_id); // microcode revision: reads 0
        log(LogLevel::info, "root: CPU lacks IA32_BIOS_SIGN_ID: the root reads revision 0");
    }
}

// Where CPUID promises more than the CPU does (or says something untrue), what the root and
// the guests see instead (cpuid_policy.hpp).
void probe_cpuid_quirks() {
    constexpr u32 msr_mcg_cap = 0x179, msr_mcg_status = 0x17A;
    u64 value = 0;
    CpuidQuirks quirks{};
    bool mca = (x86::cpuid(1).edx >> 14) & 1;
    if (mca && (!x86::rdmsr_safe(msr_mcg_cap, value) || !x86::rdmsr_safe(msr_mcg_status, value))) {
        quirks.hide_machine_check = true;
        log(LogLevel::warn, "root: CPUID reports machine-check architecture but MCG_CAP/"
                            "MCG_STATUS are missing: MCE/MCA hidden from the root");
    }
    quirks.hide_adx = adox_is_broken();
    if (quirks.hide_adx)
        log(LogLevel::warn, "root: ADOX sets OF from the signed overflow, not the carry: ADX "
                            "hidden from the root and guests (code using it computes wrong sums)");
    quirks.tsc_hz = probe_tsc_frequency();
    set_cpuid_quirks(quirks);
}

struct ApLaunch {
    VcpuConfig config;
    volatile u32 started;
    volatile u32 failed;
};
ApLaunch ap_launch;

void ap_enter_root(void*) {
    VmxVcpu& v = root_vcpus[this_cpu().index];
    const char* error = nullptr;
    x86::invept(2, x86::InveptDescriptor{0, 0});
    if (!v.create(ap_launch.config, &error)) {
        log(LogLevel::error, "root: cpu %u cannot host a root vCPU: %s", this_cpu().index, error);
        __atomic_fetch_add(&ap_launch.failed, 1, __ATOMIC_RELEASE);
        return;
    }
    v.reset_to_wait_for_sipi();
    root_apic_set_state(this_cpu().index, root::ApState::waiting_for_sipi);
    __atomic_fetch_add(&ap_launch.started, 1, __ATOMIC_RELEASE);
    run_root_vcpu(v);
}

} // namespace

RootPartition& root_partition() {
    return root_state;
}

const char* launch_root_partition(const Multiboot2Info& mb2, u64 rsdp, const Range* hidden,
                                  u32 hidden_count) {
    if (mb2.module_count < 1)
        return "no root kernel: add `module2 /boot/vmlinuz ...` to the GRUB entry";
    const Mb2Module& kmod = mb2.modules[0];
    const u8* kimage = reinterpret_cast<const u8*>(static_cast<u64>(kmod.start));
    BzImage bz{};
    linux_boot::Status st = linux_boot::parse_bzimage(kimage, kmod.end - kmod.start, bz);
    if (st != linux_boot::Status::ok) {
        log(LogLevel::error, "root: boot module 0 is not a usable bzImage: %s",
            linux_boot::to_string(st));
        return "the root kernel (boot module 0) is not a 64-bit bzImage";
    }
    bool has_initrd = mb2.module_count >= 2;
    u64 initrd_src = has_initrd ? mb2.modules[1].start : 0;
    u64 initrd_size = has_initrd ? u64{mb2.modules[1].end} - mb2.modules[1].start : 0;

    // RAM the firmware reports, and what must not be overwritten while staging.
    Range ram[Multiboot2Info::max_regions];
    u32 ram_count = 0;
    u64 ram_total = 0, top = 4ull << 30;
    for (u32 i = 0; i < mb2.region_count; ++i) {
        const Mb2MemoryRegion& r = mb2.regions[i];
        if (r.type != 1)
            continue;
        ram[ram_count++] = Range{r.addr, r.length};
        ram_total += r.length;
        if (r.addr + r.length > top)
            top = r.addr + r.length;
    }
    Range kernel_dest{
        bz.load_address,
        align_up(bz.init_size > bz.kernel_size ? bz.init_size : bz.kernel_size, page_size)};
    Range avoid[8];
    u32 avoid_count = 0;
    for (u32 i = 0; i < hidden_count && avoid_count < 4; ++i)
        avoid[avoid_count++] = hidden[i];
    avoid[avoid_count++] = Range{0, 1ull << 20}; // firmware areas, boot area, trampoline
    avoid[avoid_count++] = kernel_dest;
    avoid[avoid_count++] = Range{kmod.start, u64{kmod.end} - kmod.start};
    for (u32 i = 0; i < hidden_count; ++i) {
        if (kernel_dest.base < hidden[i].end() && kernel_dest.end() > hidden[i].base)
            return "the kernel's load area overlaps hypervisor memory";
    }

    // The command line lives in the Multiboot2 information: copy it before staging moves
    // anything over it.
    const char* cmdline = kernel_cmdline(kmod.cmdline);
    u64 cmdline_len = 0;
    while (cmdline[cmdline_len] != '\0' && cmdline_len + 1 < cmdline_max &&
           cmdline_len < bz.cmdline_max)
        ++cmdline_len;
    memset(reinterpret_cast<void*>(cmdline_pa), 0, cmdline_max);
    memcpy(reinterpret_cast<void*>(cmdline_pa), cmdline, cmdline_len);

    // 1. The initramfs goes as high as it can below 4 GiB (and initrd_addr_max).
    u64 initrd_pa = 0;
    if (has_initrd) {
        u64 limit = u64{bz.header.initrd_addr_max} + 1;
        initrd_pa = root::place_high(ram, ram_count, avoid, avoid_count, initrd_size,
                                     limit < (4ull << 30) ? limit : (4ull << 30));
        if (initrd_pa == 0)
            return "no room for the initramfs below 4 GiB";
        memmove(reinterpret_cast<void*>(initrd_pa), reinterpret_cast<const void*>(initrd_src),
                initrd_size);
    }
    // 2. The protected-mode kernel to its load address (may overlap its module: memmove).
    memmove(reinterpret_cast<void*>(bz.load_address), kimage + bz.setup_size, bz.kernel_size);

    // 3. The root's memory map: the firmware's, with hypervisor memory reserved.
    linux_boot::MemoryRange firmware[100];
    u32 firmware_count = 0;
    for (u32 i = 0; i < mb2.region_count && firmware_count < 100; ++i) {
        firmware[firmware_count++] = linux_boot::MemoryRange{
            mb2.regions[i].addr, mb2.regions[i].length, e820_type_of(mb2.regions[i].type)};
    }
    linux_boot::MemoryRange carve[4];
    for (u32 i = 0; i < hidden_count && i < 4; ++i)
        carve[i] = linux_boot::MemoryRange{hidden[i].base, hidden[i].size, E820Type::reserved};
    st = linux_boot::build_e820(firmware, firmware_count, carve, hidden_count, root_state.e820,
                                root_state.e820_count);
    if (st != linux_boot::Status::ok)
        return "the firmware memory map has too many regions";
    root_state.ram_total = ram_total;
    root_state.root_ram = 0;
    for (u32 i = 0; i < root_state.e820_count; ++i) {
        if (root_state.e820[i].type == static_cast<u32>(E820Type::ram))
            root_state.root_ram += root_state.e820[i].size;
    }
    root_state.hypervisor_bytes = 0;
    for (u32 i = 0; i < hidden_count; ++i)
        root_state.hypervisor_bytes += hidden[i].size;

    // 4. boot_params, page tables and GDT in the low boot area.
    auto* bp = reinterpret_cast<BootParams*>(boot_params_pa);
    linux_boot::fill_boot_params(*bp, bz, {cmdline_pa, initrd_pa, initrd_size, rsdp},
                                 root_state.e820, root_state.e820_count);
    build_boot_page_tables();

    // 5. The root's EPT: identity over [0, max(4 GiB, top of RAM)) minus hypervisor memory.
    const vmx::Features& f = vmx_features();
    if (root_ept.init() != ept::Status::ok)
        return "no memory for the root's EPT";
    ept::PageSize largest = f.ept_1g_pages   ? ept::PageSize::size_1g
                            : f.ept_2m_pages ? ept::PageSize::size_2m
                                             : ept::PageSize::size_4k;
    root::IdentityMapStats stats{};
    ept::Status est = root::map_identity(root_ept, host_mtrrs(), align_up(top, huge_page_size),
                                         hidden, hidden_count, largest, stats);
    if (est != ept::Status::ok) {
        log(LogLevel::error, "root: EPT identity map failed: %s", ept::to_string(est));
        return "could not build the root's EPT";
    }
    root_state.eptp = root_ept.eptp(false);
    // MSR bitmap (Vol. 3C 25.6.9): read-low, read-high, write-low, write-high, 1 KiB each.
    // Zero = no exit; the hypervisor only virtualizes IA32_MISC_ENABLE for the root.
    PhysAddr msr_bitmap = alloc_frame();
    if (msr_bitmap.value == 0)
        return "no memory for the MSR bitmap";
    probe_msrs(static_cast<u8*>(phys_to_virt(msr_bitmap)));
    if (const char* why = root_apic_prepare(root_ept, static_cast<u8*>(phys_to_virt(msr_bitmap))))
        return why;
    probe_cpuid_quirks();
    root_state.msr_bitmap = msr_bitmap.value;
    root_state.code_start = bz.load_address + linux_boot::entry64_offset;
    log(LogLevel::info,
        "root: kernel protocol %x.%02x at 0x%lx (init size %lu MiB), initrd %lu KiB at 0x%lx",
        bz.header.version >> 8, bz.header.version & 0xFF, bz.load_address, bz.init_size >> 20,
        initrd_size >> 10, initrd_pa);
    log(LogLevel::info, "root: e820 %u entries, %lu MiB RAM for the root, %lu MiB hidden",
        root_state.e820_count, root_state.root_ram >> 20, root_state.hypervisor_bytes >> 20);
    log(LogLevel::info, "root: EPT identity to %lu GiB: %lu x 1G, %lu x 2M, %lu x 4K pages",
        align_up(top, huge_page_size) >> 30, stats.pages_1g, stats.pages_2m, stats.pages_4k);
    log(LogLevel::info, "root: command line '%s'", reinterpret_cast<const char*>(cmdline_pa));

    // 6. Root vCPUs: APs parked in wait-for-SIPI, then the BSP enters the kernel.
    VcpuConfig ap{};
    ap.mode = GuestMode::real_mode;
    ap.root = true;
    ap.eptp = root_state.eptp;
    ap.vpid = 1;
    ap.msr_bitmap = root_state.msr_bitmap;
    ap.wait_for_sipi = true;
    ap_launch.config = ap;
    u32 self = this_cpu().index, others = cpu_count() - 1;
    for (u32 i = 0; i < cpu_count(); ++i) {
        if (i != self)
            start_on_cpu(i, ap_enter_root, nullptr);
    }
    while (__atomic_load_n(&ap_launch.started, __ATOMIC_ACQUIRE) +
               __atomic_load_n(&ap_launch.failed, __ATOMIC_ACQUIRE) <
           others)
        x86::pause();
    if (others != 0)
        log(LogLevel::info, "root: %u of %u application processors wait for Linux's SIPI",
            ap_launch.started, others);

    VcpuConfig bsp{};
    bsp.mode = GuestMode::long_mode;
    bsp.root = true;
    bsp.eptp = root_state.eptp;
    bsp.vpid = 1;
    bsp.msr_bitmap = root_state.msr_bitmap;
    bsp.rip = root_state.code_start;
    bsp.cr3 = pml4_pa;
    bsp.gdt_base = gdt_pa;
    bsp.gdt_limit = 0x1F;
    bsp.code_selector = boot_cs;
    bsp.data_selector = boot_ds;
    VmxVcpu& v = root_vcpus[self];
    const char* error = nullptr;
    x86::invept(2, x86::InveptDescriptor{0, 0});
    if (!v.create(bsp, &error)) {
        log(LogLevel::error, "root: %s", error);
        return "could not create the root vCPU";
    }
    v.regs.rsi = boot_params_pa; // boot.rst: %rsi = boot_params
    console_printf("godwit: starting the root partition (%lu MiB, %u CPUs)\n",
                   root_state.root_ram >> 20, ap_launch.started + 1);
    run_root_vcpu(v);
}

} // namespace godwit::hv
