#include "root/root_apic.hpp"

#include "arch/x86/apic_icr.hpp"
#include "arch/x86/intrinsics.hpp"
#include "arch/x86/vmx/vmx_instruction.hpp"
#include "kernel/console.hpp"
#include "kernel/percpu.hpp"
#include "platform/lapic.hpp"
#include "root/root_memory.hpp"
#include "root/root_partition.hpp"

extern "C" void* memcpy(void*, const void*, godwit::hv::usize);

namespace godwit::hv {
namespace {

constexpr u32 msr_apic_base = 0x1B;
constexpr u64 apic_base_address_mask = 0x000FFFFFFFFFF000ull;
constexpr u64 apic_base_x2apic = 1ull << 10;

u32 apic_ids[max_cpus];
u8 states[max_cpus];
u64 apic_page = 0;
ept::EptTable* root_ept_table = nullptr;
bool xapic_trapped = false; // the APIC page is read-only in the root's EPT

root::RootCpus root_cpus() {
    return root::RootCpus{cpu_count(), apic_ids, states};
}

bool x2apic_now() {
    return (x86::rdmsr(msr_apic_base) & apic_base_x2apic) != 0;
}

// The root's page tables and code are in its RAM, identity-mapped in the hypervisor.
bool read_root_physical(void*, u64 gpa, void* destination, u32 length) {
    const RootPartition& r = root_partition();
    if (!root::buffer_in_ram(r.e820, r.e820_count, gpa, length))
        return false;
    memcpy(destination, reinterpret_cast<const void*>(gpa), length);
    return true;
}

// Logs of what the root should not do are kept to the first few of each kind.
bool first_few(u32& counter) {
    return __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED) < 16;
}

// An ICR write of the root (the whole register: in xAPIC mode the hardware's ICR high, which
// the root wrote before, << 32 | the low half being written). False when the hardware
// refuses it (x2APIC: reserved bits set), which the root gets as #GP, as it would have.
bool icr_write(u64 icr, bool x2apic) {
    x86::IcrCommand command = x86::decode_icr(icr, x2apic);
    bool startup = command.mode == x86::DeliveryMode::startup;
    if (command.mode != x86::DeliveryMode::init && !startup) {
        if (x2apic)
            return x86::wrmsr_safe(x86::x2apic_icr_msr, icr);
        *reinterpret_cast<volatile u32*>(apic_page + x86::xapic_icr_low) = static_cast<u32>(icr);
        return true;
    }
    static u32 logical_logged = 0;
    if (command.logical && command.shorthand == x86::Shorthand::none && first_few(logical_logged))
        log(LogLevel::warn,
            "root: %s IPI with a logical destination 0x%x dropped (root CPUs start by APIC ID)",
            startup ? "STARTUP" : "INIT", command.destination);
    root::RootCpus cpus = root_cpus();
    u32 self = this_cpu().index;
    u64 targets = root::startup_targets(command, self, cpus, x2apic);
    u32 low = x86::icr_low_for_one_target(static_cast<u32>(icr));
    for (u32 i = 0; i < cpus.count; ++i) {
        if (((targets >> i) & 1) == 0 ||
            root::claim_startup_ipi(command, cpus, i) != root::StartupAction::send)
            continue;
        if (startup)
            log(LogLevel::info, "root: cpu %u starts cpu %u (APIC ID %u) at 0x%x", self, i,
                apic_ids[i], u32{command.vector} << 12);
        else
            log(LogLevel::info, "root: cpu %u sends INIT to running cpu %u (APIC ID %u)", self, i,
                apic_ids[i]);
        lapic_send_ipi(apic_ids[i], low);
    }
    return true;
}

// Once every root vCPU has been started, the xAPIC page becomes writable again: trapping
// every EOI and timer write costs an exit each, and from then on an INIT can only be for a
// running vCPU (CPU hotplug), which the INIT exit handles. The x2APIC ICR stays trapped
// (only IPIs exit there).
void release_xapic_trap_when_all_started() {
    for (u32 i = 0; i < cpu_count(); ++i) {
        auto s = static_cast<root::ApState>(__atomic_load_n(&states[i], __ATOMIC_ACQUIRE));
        if (s != root::ApState::running && s != root::ApState::absent)
            return;
    }
    if (!__atomic_exchange_n(&xapic_trapped, false, __ATOMIC_ACQ_REL))
        return;
    root_ept_table->protect(apic_page, page_size, ept::access_rwx);
    x86::invept(2, x86::InveptDescriptor{0, 0}); // the others: at their next write (below)
    log(LogLevel::info,
        "root: every CPU started: the local APIC page is writable again (INIT and SIPI go "
        "to the hardware from now on)");
}

} // namespace

const char* root_apic_prepare(ept::EptTable& root_ept, u8* msr_bitmap) {
    apic_page = x86::rdmsr(msr_apic_base) & apic_base_address_mask;
    for (u32 i = 0; i < cpu_count(); ++i) {
        apic_ids[i] = cpu(i).apic_id;
        states[i] = static_cast<u8>(root::ApState::absent);
    }
    states[this_cpu().index] = static_cast<u8>(root::ApState::running);
    if (root_ept.protect(apic_page, page_size, ept::access_read) != ept::Status::ok)
        return "could not write-protect the local APIC page in the root's EPT";
    root_ept_table = &root_ept;
    xapic_trapped = true;
    // Write-low bitmap (Vol. 3C 25.6.9): the ICR and IA32_APIC_BASE.
    const u32 trapped[] = {x86::x2apic_icr_msr, msr_apic_base};
    for (u32 msr : trapped)
        msr_bitmap[2048 + msr / 8] |= static_cast<u8>(1u << (msr % 8));
    return nullptr;
}

void root_apic_set_state(u32 index, root::ApState state) {
    __atomic_store_n(&states[index], static_cast<u8>(state), __ATOMIC_RELEASE);
}

bool root_apic_ept_violation(VmxVcpu& v, const VmExit& e) {
    bool write = ((e.qualification >> 1) & 1) != 0;
    if (apic_page == 0 || (e.guest_physical & ~(page_size - 1)) != apic_page || !write)
        return false;
    if (!__atomic_load_n(&xapic_trapped, __ATOMIC_ACQUIRE)) {
        // Released on another CPU; this one still had the read-only translation cached.
        x86::invept(2, x86::InveptDescriptor{0, 0});
        return true; // the write is retried
    }
    x86::GuestPhysicalReader reader{read_root_physical, nullptr};
    CurrentInstruction c = decode_current_instruction(v, reader);
    static u32 refused = 0;
    if (c.status != x86::DecodeStatus::ok || c.decoded.op == x86::MmioOp::load) {
        // Not a plain MOV to the APIC (or the code changed under us): fault it, as a
        // device would that refuses the access; Linux only writes the APIC with MOV.
        if (first_few(refused))
            log(LogLevel::warn,
                "root: write to the local APIC at 0x%lx by the instruction at 0x%lx not "
                "emulated (%s): #GP",
                e.guest_physical, c.linear,
                c.status == x86::DecodeStatus::ok ? "a load" : decode_failure(c));
        v.inject_gp();
        return true;
    }
    u64 gprs[16];
    read_gprs(v, gprs);
    u64 value = x86::store_value(c.decoded, gprs);
    u32 offset = static_cast<u32>(e.guest_physical & (page_size - 1));
    if (offset + c.decoded.access_size > page_size) { // would reach past the APIC page
        v.inject_gp();
        return true;
    }
    // In x2APIC mode the MMIO page is not the APIC (Vol. 3A 11.12.1): the write goes to
    // the hardware as written, with no ICR meaning.
    if (offset == x86::xapic_icr_low && c.decoded.access_size == 4 && !x2apic_now()) {
        u32 high = *reinterpret_cast<volatile u32*>(apic_page + x86::xapic_icr_high);
        (void)icr_write((u64{high} << 32) | value, false); // xAPIC ignores reserved bits
    } else {
        switch (c.decoded.access_size) { // what the instruction did, on the hardware
        case 1:
            *reinterpret_cast<volatile u8*>(e.guest_physical) = static_cast<u8>(value);
            break;
        case 2:
            *reinterpret_cast<volatile u16*>(e.guest_physical) = static_cast<u16>(value);
            break;
        case 4:
            *reinterpret_cast<volatile u32*>(e.guest_physical) = static_cast<u32>(value);
            break;
        default:
            *reinterpret_cast<volatile u64*>(e.guest_physical) = value;
            break;
        }
    }
    v.skip_instruction(c.decoded.length);
    return true;
}

bool root_apic_wrmsr(VmxVcpu& v, const VmExit& e) {
    u32 msr = static_cast<u32>(v.regs.rcx);
    u64 value = (v.regs.rdx << 32) | (v.regs.rax & 0xFFFFFFFFu);
    if (msr == x86::x2apic_icr_msr) {
        if (!x2apic_now()) { // the MSR exists only in x2APIC mode (Vol. 3A 11.12.1)
            v.inject_gp();
            return true;
        }
        if (!icr_write(value, true)) {
            v.inject_gp();
            return true;
        }
        v.skip_instruction(e.instruction_length);
        return true;
    }
    if (msr != msr_apic_base)
        return false;
    static u32 moves = 0;
    if ((value & apic_base_address_mask) != apic_page) {
        if (first_few(moves))
            log(LogLevel::warn,
                "root: IA32_APIC_BASE write 0x%lx would move the local APIC from 0x%lx: #GP", value,
                apic_page);
        v.inject_gp();
        return true;
    }
    if (!x86::wrmsr_safe(msr_apic_base, value)) { // a reserved bit or an illegal transition
        v.inject_gp();
        return true;
    }
    v.skip_instruction(e.instruction_length);
    return true;
}

void root_apic_init_exit(VmxVcpu& v) {
    root::RootCpus cpus = root_cpus();
    u32 self = this_cpu().index;
    bool trapped = __atomic_load_n(&xapic_trapped, __ATOMIC_ACQUIRE) || x2apic_now();
    if (!root::on_init_exit(cpus, self) && trapped)
        log(LogLevel::error,
            "root: cpu %u took an INIT nobody sent (an emulator that keeps INIT pending "
            "after its VM exit, as Bochs 2.7 does, cannot restart this CPU)",
            self);
    // The INIT state, waiting for a SIPI (Vol. 3A 9.1, Vol. 3C 25.4.2), as the CPU would be
    // outside VMX.
    v.reset_to_wait_for_sipi();
}

void root_apic_sipi_exit(VmxVcpu& v, const VmExit& e) {
    root::RootCpus cpus = root_cpus();
    u32 self = this_cpu().index;
    bool trapped = __atomic_load_n(&xapic_trapped, __ATOMIC_ACQUIRE) || x2apic_now();
    if (!root::on_sipi_exit(cpus, self) && trapped)
        log(LogLevel::warn, "root: cpu %u took a STARTUP IPI the hypervisor did not send", self);
    v.start_at_sipi(static_cast<u8>(e.qualification & 0xFF));
    release_xapic_trap_when_all_started();
}

} // namespace godwit::hv
