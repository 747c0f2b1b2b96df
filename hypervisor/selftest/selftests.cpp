// Built-in self-tests (`selftest` on the command line): small guests that exercise VT-x,
// EPT and dirty logging on the real (or emulated) CPU. One line per test, then the result.
#include "selftest/selftest.hpp"

#include "abi/godwit_hypercall.h"
#include "arch/x86/intrinsics.hpp"
#include "arch/x86/vmx/vmcs_fields.hpp"
#include "arch/x86/vmx/vmx_exit.hpp"
#include "arch/x86/vmx/vmx_exit_handlers.hpp"
#include "arch/x86/vmx/vmx_state.hpp"
#include "dirty_log/dirty_bitmap.hpp"
#include "kernel/console.hpp"
#include "kernel/percpu.hpp"
#include "kernel/smp.hpp"
#include "selftest/test_guest.hpp"

#define GUEST_PROGRAM(name) extern "C" char name[], name##_end[];
GUEST_PROGRAM(guest_cpuid_io_vmcall)
GUEST_PROGRAM(guest_demand_map)
GUEST_PROGRAM(guest_dirty_pages)
GUEST_PROGRAM(guest_spin)
GUEST_PROGRAM(guest_increment)
GUEST_PROGRAM(guest_real_mode)
GUEST_PROGRAM(guest_cr_msr)
GUEST_PROGRAM(guest_faulting)
#undef GUEST_PROGRAM

namespace godwit::hv::selftest {
namespace {

using vmx::ExitReason;

struct Result {
    bool pass;
    const char* why;
};

constexpr u32 max_exits = 1000; // a runaway guest fails its test, never hangs the run

bool is(const VmExit& e, ExitReason r) {
    return !e.entry_failed && e.reason == static_cast<u32>(r);
}

void describe_unexpected(const VmExit& e) {
    if (e.entry_failed && e.instruction_error != 0) {
        log(LogLevel::error, "VM entry failed: VM-instruction error %u (%s)", e.instruction_error,
            vmx::vm_instruction_error_text(e.instruction_error));
    } else {
        log(LogLevel::error, "unexpected exit %u (%s)%s, qualification 0x%lx, rip 0x%lx, gpa 0x%lx",
            e.reason, vmx::exit_reason_name(e.reason), e.entry_failed ? " on VM entry" : "",
            e.qualification, e.guest_rip, e.guest_physical);
    }
}

// Runs the guest until an exit its owner (the test) must handle. Exits the hypervisor
// handles for every guest (CPUID, MSRs, CR0/CR4, INIT/SIPI) are handled on the way.
// Returns false when the guest was stopped (triple fault, entry failure); *why says why.
bool run_to_owner(TestGuest& g, VmExit& e, const char** why, u32* handled = nullptr) {
    for (u32 n = 0; n < max_exits; ++n) {
        e = g.vcpu().run();
        ExitOutcome o = handle_exit(g.vcpu(), e);
        if (o.action == ExitAction::to_owner)
            return true;
        if (o.action == ExitAction::stop_guest) {
            *why = o.why;
            return false;
        }
        if (handled != nullptr)
            ++*handled;
    }
    *why = "guest exceeded the exit budget";
    return false;
}

Result test_guest64() {
    TestGuest g;
    const char* error = nullptr;
    if (!g.create(GuestMode::long_mode, guest_cpuid_io_vmcall, guest_cpuid_io_vmcall_end, {},
                  &error)) {
        g.destroy();
        return {false, error};
    }
    bool saw_io = false, done = false;
    u32 handled = 0;
    Result result{false, "guest never made its VMCALL"};
    for (u32 n = 0; n < max_exits && !done; ++n) {
        VmExit e;
        const char* why = nullptr;
        if (!run_to_owner(g, e, &why, &handled)) {
            result = {false, why};
            break;
        }
        bool saw_cpuid = handled > 0;
        if (is(e, ExitReason::io_instruction)) {
            vmx::IoAccess io = vmx::decode_io(e.qualification);
            saw_io =
                io.port == 0x80 && !io.in && io.size == 1 && (g.vcpu().regs.rax & 0xFF) == 0x42;
            g.vcpu().skip_instruction(e.instruction_length);
        } else if (is(e, ExitReason::vmcall)) {
            done = true;
            x86::CpuidResult host = x86::cpuid(0);
            auto* seen = reinterpret_cast<u32*>(g.ram(guest_data_gpa));
            if (g.vcpu().regs.rax != guest_done)
                result = {false, "VMCALL with the wrong RAX"};
            else if (!saw_cpuid)
                result = {false, "no CPUID exit"};
            else if (!saw_io)
                result = {false, "no OUT 0x42 to port 0x80 exit"};
            else if (seen[0] != host.ebx || seen[1] != host.edx || seen[2] != host.ecx)
                result = {false, "guest saw different CPUID values"};
            else
                result = {true, ""};
        } else {
            describe_unexpected(e);
            result = {false, "unexpected VM exit"};
            break;
        }
    }
    g.destroy();
    return result;
}

Result test_real_mode() {
    TestGuest g;
    const char* error = nullptr;
    if (!g.create(GuestMode::real_mode, guest_real_mode, guest_real_mode_end, {}, &error)) {
        g.destroy();
        return {false, error};
    }
    Result result{false, "guest never halted"};
    bool saw_io = false;
    for (u32 n = 0; n < max_exits; ++n) {
        VmExit e;
        const char* why = nullptr;
        if (!run_to_owner(g, e, &why)) {
            result = {false, why};
            break;
        }
        if (is(e, ExitReason::io_instruction)) {
            vmx::IoAccess io = vmx::decode_io(e.qualification);
            saw_io = io.port == 0x81 && io.size == 2 && (g.vcpu().regs.rax & 0xFFFF) == 0x2345;
            g.vcpu().skip_instruction(e.instruction_length);
        } else if (is(e, ExitReason::hlt)) {
            u64 cr0 = g.vcpu().read_field(static_cast<u32>(vmx::VmcsField::guest_cr0));
            auto stored = *reinterpret_cast<u16*>(g.ram(0x2000));
            if (!saw_io)
                result = {false, "no 16-bit OUT 0x2345 to port 0x81"};
            else if (stored != 0x2345)
                result = {false, "store to 0x2000 missing"};
            else if (cr0 & 1)
                result = {false, "guest was not in real mode (CR0.PE=1)"};
            else
                result = {true, ""};
            break;
        } else {
            describe_unexpected(e);
            result = {false, "unexpected VM exit"};
            break;
        }
    }
    g.destroy();
    return result;
}

Result test_demand_map() {
    TestGuest g;
    const char* error = nullptr;
    if (!g.create(GuestMode::long_mode, guest_demand_map, guest_demand_map_end, {}, &error)) {
        g.destroy();
        return {false, error};
    }
    PhysAddr pages[2] = {};
    u32 violations = 0;
    Result result{false, "guest never made its VMCALL"};
    for (u32 n = 0; n < max_exits; ++n) {
        VmExit e;
        const char* why = nullptr;
        if (!run_to_owner(g, e, &why)) {
            result = {false, why};
            break;
        }
        if (is(e, ExitReason::ept_violation)) {
            u64 gpa = align_down(e.guest_physical, page_size);
            if ((gpa != 0x400000 && gpa != 0x401000) || violations >= 2) {
                describe_unexpected(e);
                result = {false, "EPT violation at an unexpected address"};
                break;
            }
            PhysAddr frame = alloc_frame();
            pages[violations++] = frame;
            static_cast<u64*>(phys_to_virt(frame))[0] = 0xC0FFEE0000000000ull | gpa;
            g.ept().map(gpa, frame.value, ept::PageSize::size_4k, ept::access_rwx,
                        ept::memory_type_wb);
            g.invalidate_ept();
            // Not skipping the instruction: the guest retries the access, now mapped.
        } else if (is(e, ExitReason::vmcall)) {
            if (violations != 2)
                result = {false, "expected two EPT violations"};
            else if (g.vcpu().regs.rbx != (0xC0FFEE0000000000ull | 0x400000))
                result = {false, "guest read wrong data"};
            else if (static_cast<u64*>(phys_to_virt(pages[1]))[1] != 0x77)
                result = {false, "guest write did not land"};
            else
                result = {true, ""};
            break;
        } else {
            describe_unexpected(e);
            result = {false, "unexpected VM exit"};
            break;
        }
    }
    g.destroy();
    for (PhysAddr p : pages) {
        if (p.value != 0)
            free_frame(p);
    }
    return result;
}

constexpr u64 dirty_region = 0x100000;
constexpr u64 dirty_pages = 64;
constexpr u64 expected_dirty[] = {3, 7, 8, 20, 63};

Result check_dirty(const dirty_log::DirtyBitmap& bitmap) {
    for (u64 p = 0; p < dirty_pages; ++p) {
        bool want = false;
        for (u64 e : expected_dirty)
            want = want || e == p;
        if (bitmap.test(dirty_region + p * page_size) != want) {
            log(LogLevel::error, "dirty bitmap wrong for page %lu (want %d)", p, want);
            return {false, "harvested bitmap differs from the pages written"};
        }
    }
    return {true, ""};
}

Result test_dirty_write_protect() {
    TestGuest g;
    const char* error = nullptr;
    if (!g.create(GuestMode::long_mode, guest_dirty_pages, guest_dirty_pages_end, {}, &error)) {
        g.destroy();
        return {false, error};
    }
    u64 storage[1];
    dirty_log::DirtyBitmap bitmap;
    bitmap.init(storage, dirty_region, dirty_pages);
    // Start logging: every page of the region read/execute only.
    g.ept().protect(dirty_region, dirty_pages * page_size, ept::access_read | ept::access_execute);
    g.invalidate_ept();
    Result result{false, "guest never made its VMCALL"};
    for (u32 n = 0; n < max_exits; ++n) {
        VmExit e;
        const char* why = nullptr;
        if (!run_to_owner(g, e, &why)) {
            result = {false, why};
            break;
        }
        if (is(e, ExitReason::ept_violation) && vmx::decode_ept_violation(e.qualification).write) {
            u64 gpa = align_down(e.guest_physical, page_size);
            bitmap.mark(gpa);
            g.ept().protect(gpa, page_size,
                            ept::access_rwx); // later writes to it run at full speed
            g.invalidate_ept();
        } else if (is(e, ExitReason::vmcall)) {
            result = check_dirty(bitmap);
            if (result.pass && *reinterpret_cast<u64*>(g.ram(0x13FFF8)) != 6)
                result = {false, "a write was lost"};
            break;
        } else {
            describe_unexpected(e);
            result = {false, "unexpected VM exit"};
            break;
        }
    }
    g.destroy();
    return result;
}

Result test_dirty_pml() {
    PhysAddr buffer = alloc_frame();
    if (buffer.value == 0)
        return {false, "no memory for the PML buffer"};
    TestGuest g;
    const char* error = nullptr;
    VcpuConfig config;
    config.pml = true;
    config.pml_buffer = buffer.value;
    Result result{false, "guest never made its VMCALL"};
    if (!g.create(GuestMode::long_mode, guest_dirty_pages, guest_dirty_pages_end, config, &error)) {
        result = {false, error};
    } else {
        u64 storage[1];
        dirty_log::DirtyBitmap bitmap;
        bitmap.init(storage, dirty_region, dirty_pages);
        auto* log_entries = static_cast<const u64*>(phys_to_virt(buffer));
        auto harvest = [&] {
            u16 index = static_cast<u16>(
                g.vcpu().read_field(static_cast<u32>(vmx::VmcsField::guest_pml_index)));
            dirty_log::harvest_pml(log_entries, index, bitmap);
            g.vcpu().write_field(static_cast<u32>(vmx::VmcsField::guest_pml_index), 511);
        };
        for (u32 n = 0; n < max_exits; ++n) {
            VmExit e;
            const char* why = nullptr;
            if (!run_to_owner(g, e, &why)) {
                result = {false, why};
                break;
            }
            if (is(e, ExitReason::pml_full)) {
                harvest();
            } else if (is(e, ExitReason::vmcall)) {
                harvest();
                result = check_dirty(bitmap);
                break;
            } else {
                describe_unexpected(e);
                result = {false, "unexpected VM exit"};
                break;
            }
        }
    }
    g.destroy();
    free_frame(buffer);
    return result;
}

Result test_preemption_timer() {
    TestGuest g;
    const char* error = nullptr;
    VcpuConfig config;
    config.preemption_timer = true;
    config.preemption_timer_value = 20000;
    Result result{false, "no preemption-timer exit"};
    if (!g.create(GuestMode::long_mode, guest_spin, guest_spin_end, config, &error)) {
        result = {false, error};
    } else {
        VmExit e = g.vcpu().run();
        if (is(e, ExitReason::preemption_timer)) {
            result = e.guest_rip >= guest_code_gpa && e.guest_rip < guest_code_gpa + 16
                         ? Result{true, ""}
                         : Result{false, "timer exit at an unexpected RIP"};
        } else {
            describe_unexpected(e);
        }
    }
    g.destroy();
    return result;
}

Result test_cr_msr_exits() {
    TestGuest g;
    const char* error = nullptr;
    if (!g.create(GuestMode::long_mode, guest_cr_msr, guest_cr_msr_end, {}, &error)) {
        g.destroy();
        return {false, error};
    }
    VmExit e;
    const char* why = nullptr;
    u32 handled = 0;
    Result result{true, ""};
    if (!run_to_owner(g, e, &why, &handled)) {
        result = {false, why};
    } else if (!is(e, ExitReason::vmcall)) {
        describe_unexpected(e);
        result = {false, "unexpected VM exit"};
    } else {
        auto* seen = reinterpret_cast<u32*>(g.ram(guest_data_gpa + 0x10));
        u64 pat = *reinterpret_cast<u64*>(g.ram(guest_data_gpa + 0x20));
        u64 shadow = g.vcpu().read_field(static_cast<u32>(vmx::VmcsField::cr0_read_shadow));
        if (seen[0] != GODWIT_CPUID_SIGNATURE_EBX || seen[1] != GODWIT_CPUID_SIGNATURE_ECX ||
            seen[2] != GODWIT_CPUID_SIGNATURE_EDX)
            result = {false, "hypervisor CPUID leaf did not say GodwitGodwit"};
        else if ((g.vcpu().regs.rbx & 0x20) == 0 || (shadow & 0x20) == 0)
            result = {false, "CR0 write was not reflected in the read shadow"};
        else if (pat != x86::rdmsr(0x277))
            result = {false, "RDMSR IA32_PAT returned the wrong value"};
        else if (handled < 3)
            result = {false, "expected CPUID, CR access and RDMSR exits"};
    }
    g.destroy();
    return result;
}

// A guest that faults with no way to handle it must stop alone; the next guest runs fine.
Result test_faulting_guest_contained() {
    TestGuest bad;
    const char* error = nullptr;
    Result result{true, ""};
    if (!bad.create(GuestMode::long_mode, guest_faulting, guest_faulting_end, {}, &error)) {
        bad.destroy();
        return {false, error};
    }
    VmExit e;
    const char* why = nullptr;
    if (run_to_owner(bad, e, &why)) {
        describe_unexpected(e);
        result = {false, "faulting guest was not stopped"};
    } else if (!is(e, ExitReason::triple_fault)) {
        describe_unexpected(e);
        result = {false, "expected the guest to triple-fault"};
    }
    bad.destroy();
    if (!result.pass)
        return result;
    TestGuest good;
    if (!good.create(GuestMode::long_mode, guest_increment, guest_increment_end, {}, &error)) {
        good.destroy();
        return {false, error};
    }
    good.vcpu().regs.rbx = 41;
    if (!run_to_owner(good, e, &why) || !is(e, ExitReason::vmcall) || good.vcpu().regs.rbx != 42) {
        result = {false, "the next guest did not run correctly"};
    }
    good.destroy();
    return result;
}

struct SmpResults {
    u32 passed;
    u32 failed;
};

void smp_guest_on_this_cpu(void* arg) {
    auto* results = static_cast<SmpResults*>(arg);
    u32 index = this_cpu().index;
    TestGuest g;
    const char* error = nullptr;
    VcpuConfig config;
    config.vpid = static_cast<u16>(index + 1);
    bool ok = false;
    if (g.create(GuestMode::long_mode, guest_increment, guest_increment_end, config, &error)) {
        g.vcpu().regs.rbx = 1000 + index;
        VmExit e = g.vcpu().run();
        ok = is(e, ExitReason::vmcall) && g.vcpu().regs.rbx == 1001 + index &&
             this_cpu().index == index;
        if (!ok)
            describe_unexpected(e);
    } else {
        log(LogLevel::error, "smp guest: %s", error);
    }
    g.destroy();
    __atomic_fetch_add(ok ? &results->passed : &results->failed, 1, __ATOMIC_RELAXED);
}

Result test_smp_guests() {
    SmpResults results{0, 0};
    run_on_all_cpus(smp_guest_on_this_cpu, &results);
    if (results.failed != 0 || results.passed != cpu_count())
        return {false, "a CPU's guest failed"};
    return {true, ""};
}

bool report(const char* name, Result r) {
    if (r.pass) {
        console_printf("SELFTEST %s PASS\n", name);
    } else {
        console_printf("SELFTEST %s FAIL %s\n", name, r.why);
    }
    return r.pass;
}

} // namespace
} // namespace godwit::hv::selftest

namespace godwit::hv {

bool run_selftests() {
    using namespace selftest;
    bool all = true;
    u32 online = cpu_count();
    u32 vmx_on = vmx_cpus_on();
    all &= report("vmx_enable",
                  vmx_on == online ? Result{true, ""} : Result{false, "VMXON failed on a CPU"});
    if (vmx_on != online) {
        console_printf("SELFTEST RESULT FAIL\n");
        return false;
    }
    all &= report("guest64_cpuid_io_vmcall", test_guest64());
    all &= report("real_mode_guest", test_real_mode());
    all &= report("ept_demand_map", test_demand_map());
    all &= report("dirty_log_wp", test_dirty_write_protect());
    if (vmx_features().pml) {
        all &= report("dirty_log_pml", test_dirty_pml());
    } else {
        console_printf("SELFTEST dirty_log_pml SKIP no PML\n");
    }
    if (vmx_features().preemption_timer) {
        all &= report("preemption_timer", test_preemption_timer());
    } else {
        all &= report("preemption_timer", Result{false, "CPU has no VMX preemption timer"});
    }
    all &= report("cr_msr_exits", test_cr_msr_exits());
    all &= report("faulting_guest_contained", test_faulting_guest_contained());
    all &= report("smp_guests", test_smp_guests());
    console_printf("SELFTEST RESULT %s\n", all ? "PASS" : "FAIL");
    return all;
}

} // namespace godwit::hv
