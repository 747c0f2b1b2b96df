#include "godwit/vmm/vcpu_state.hpp"

#include <array>
#include <utility>

#include <fmt/format.h>

#include "godwit/error.hpp"
#include "vcpu_state.pb.h"

namespace godwit::vmm {

VcpuState reset_vcpu_state(bool bootstrap_processor) {
    VcpuState s;
    // SDM vol. 3 table 9-1: CS selector F000 base FFFF0000, IP FFF0; data segments 0 with
    // limit FFFF, present read/write accessed; LDTR/TR present system segments.
    s.cs = {0xf000, 0xffff'0000, 0xffff, 0x9b};
    s.ds = s.es = s.fs = s.gs = s.ss = {0, 0, 0xffff, 0x93};
    s.ldtr = {0, 0, 0xffff, 0x82};
    s.tr = {0, 0, 0xffff, 0x8b};
    s.rdx = 0x600; // family/model/stepping placeholder: a VMM reports its CPUID signature
    if (bootstrap_processor) {
        s.apic_base |= 1u << 8;
    } else {
        s.activity = ActivityState::wait_for_sipi;
    }
    return s;
}

namespace {

// MSR indices (SDM vol. 4) used as keys of the proto's msrs map.
enum : std::uint32_t {
    msr_tsc = 0x10,
    msr_apic_base = 0x1b,
    msr_sysenter_cs = 0x174,
    msr_sysenter_esp = 0x175,
    msr_sysenter_eip = 0x176,
    msr_misc_enable = 0x1a0,
    msr_pat = 0x277,
    msr_efer = 0xc000'0080,
    msr_star = 0xc000'0081,
    msr_lstar = 0xc000'0082,
    msr_cstar = 0xc000'0083,
    msr_fmask = 0xc000'0084,
    msr_kernel_gs_base = 0xc000'0102,
    msr_tsc_aux = 0xc000'0103,
};

template <typename State>
auto msr_fields(State& s) {
    return std::array{
        std::pair{msr_tsc, &s.tsc},
        std::pair{msr_apic_base, &s.apic_base},
        std::pair{msr_sysenter_cs, &s.sysenter_cs},
        std::pair{msr_sysenter_esp, &s.sysenter_esp},
        std::pair{msr_sysenter_eip, &s.sysenter_eip},
        std::pair{msr_misc_enable, &s.misc_enable},
        std::pair{msr_pat, &s.pat},
        std::pair{msr_efer, &s.efer},
        std::pair{msr_star, &s.star},
        std::pair{msr_lstar, &s.lstar},
        std::pair{msr_cstar, &s.cstar},
        std::pair{msr_fmask, &s.fmask},
        std::pair{msr_kernel_gs_base, &s.kernel_gs_base},
        std::pair{msr_tsc_aux, &s.tsc_aux},
    };
}

template <typename State>
auto gpr_fields(State& s) {
    return std::array{&s.rax, &s.rcx, &s.rdx, &s.rbx, &s.rsp, &s.rbp, &s.rsi, &s.rdi,
                      &s.r8,  &s.r9,  &s.r10, &s.r11, &s.r12, &s.r13, &s.r14, &s.r15};
}

void to_proto(const SegmentRegister& s, proto::Segment* p) {
    p->set_selector(s.selector);
    p->set_base(s.base);
    p->set_limit(s.limit);
    p->set_access_rights(s.access_rights);
}

std::uint32_t checked(std::uint64_t v, std::uint64_t max, const char* what) {
    if (v > max) {
        throw Error(ErrorCode::invalid_input,
                    fmt::format("vCPU state: {} value {:#x} is out of range", what, v));
    }
    return static_cast<std::uint32_t>(v);
}

SegmentRegister from_proto(const proto::Segment& p, const char* what) {
    return {static_cast<std::uint16_t>(checked(p.selector(), 0xffff, what)), p.base(), p.limit(),
            checked(p.access_rights(), 0x1ffff, what)};
}

} // namespace

std::string serialize_vcpu_state(const VcpuState& state) {
    proto::VcpuState p;
    p.set_version(1);
    for (const std::uint64_t* r : gpr_fields(state)) {
        p.add_gprs(*r);
    }
    p.set_rip(state.rip);
    p.set_rflags(state.rflags);
    to_proto(state.cs, p.mutable_cs());
    to_proto(state.ds, p.mutable_ds());
    to_proto(state.es, p.mutable_es());
    to_proto(state.fs, p.mutable_fs());
    to_proto(state.gs, p.mutable_gs());
    to_proto(state.ss, p.mutable_ss());
    to_proto(state.ldtr, p.mutable_ldtr());
    to_proto(state.tr, p.mutable_tr());
    p.mutable_gdtr()->set_base(state.gdtr.base);
    p.mutable_gdtr()->set_limit(state.gdtr.limit);
    p.mutable_idtr()->set_base(state.idtr.base);
    p.mutable_idtr()->set_limit(state.idtr.limit);
    p.set_cr0(state.cr0);
    p.set_cr2(state.cr2);
    p.set_cr3(state.cr3);
    p.set_cr4(state.cr4);
    p.set_cr8(state.cr8);
    for (std::uint64_t dr : {state.dr0, state.dr1, state.dr2, state.dr3, state.dr6, state.dr7}) {
        p.add_debug_registers(dr);
    }
    p.set_xcr0(state.xcr0);
    for (const auto& [index, field] : msr_fields(state)) {
        (*p.mutable_msrs())[index] = *field;
    }
    p.set_xsave_area(state.xsave_area.data(), state.xsave_area.size());
    p.set_activity_state(static_cast<std::uint32_t>(state.activity));
    auto* e = p.mutable_events();
    const PendingEvents& ev = state.events;
    e->set_exception_pending(ev.exception_pending);
    e->set_exception_vector(ev.exception_vector);
    e->set_exception_has_error_code(ev.exception_has_error_code);
    e->set_exception_error_code(ev.exception_error_code);
    e->set_nmi_pending(ev.nmi_pending);
    e->set_nmis_blocked(ev.nmis_blocked);
    e->set_interrupt_pending(ev.interrupt_pending);
    e->set_interrupt_vector(ev.interrupt_vector);
    e->set_interruptibility(ev.interruptibility);
    e->set_sipi_vector(ev.sipi_vector);
    std::string out;
    if (!p.SerializeToString(&out)) {
        throw Error(ErrorCode::internal, "vCPU state: protobuf serialization failed");
    }
    return out;
}

VcpuState parse_vcpu_state(const std::string& bytes) {
    proto::VcpuState p;
    if (!p.ParseFromString(bytes)) {
        throw Error(ErrorCode::invalid_input, "vCPU state: not a VcpuState protobuf message");
    }
    if (p.version() != 1) {
        throw Error(ErrorCode::unsupported,
                    fmt::format("vCPU state: version {} (this VMM reads version 1)", p.version()));
    }
    if (p.gprs_size() != 16 || p.debug_registers_size() != 6) {
        throw Error(ErrorCode::invalid_input,
                    fmt::format("vCPU state: {} general registers and {} debug registers "
                                "(want 16 and 6)",
                                p.gprs_size(), p.debug_registers_size()));
    }
    VcpuState s;
    auto gprs = gpr_fields(s);
    for (int i = 0; i < 16; ++i) {
        *gprs[static_cast<std::size_t>(i)] = p.gprs(i);
    }
    s.rip = p.rip();
    s.rflags = p.rflags();
    s.cs = from_proto(p.cs(), "CS");
    s.ds = from_proto(p.ds(), "DS");
    s.es = from_proto(p.es(), "ES");
    s.fs = from_proto(p.fs(), "FS");
    s.gs = from_proto(p.gs(), "GS");
    s.ss = from_proto(p.ss(), "SS");
    s.ldtr = from_proto(p.ldtr(), "LDTR");
    s.tr = from_proto(p.tr(), "TR");
    s.gdtr = {p.gdtr().base(),
              static_cast<std::uint16_t>(checked(p.gdtr().limit(), 0xffff, "GDTR limit"))};
    s.idtr = {p.idtr().base(),
              static_cast<std::uint16_t>(checked(p.idtr().limit(), 0xffff, "IDTR limit"))};
    s.cr0 = p.cr0();
    s.cr2 = p.cr2();
    s.cr3 = p.cr3();
    s.cr4 = p.cr4();
    s.cr8 = p.cr8();
    s.dr0 = p.debug_registers(0);
    s.dr1 = p.debug_registers(1);
    s.dr2 = p.debug_registers(2);
    s.dr3 = p.debug_registers(3);
    s.dr6 = p.debug_registers(4);
    s.dr7 = p.debug_registers(5);
    s.xcr0 = p.xcr0();
    for (const auto& [index, field] : msr_fields(s)) {
        auto it = p.msrs().find(index);
        if (it == p.msrs().end()) {
            throw Error(ErrorCode::invalid_input,
                        fmt::format("vCPU state: MSR {:#x} is missing", index));
        }
        *field = it->second;
    }
    s.xsave_area.assign(p.xsave_area().begin(), p.xsave_area().end());
    std::uint32_t activity = p.activity_state();
    if (activity != 0 && activity != 1 && activity != 3) {
        throw Error(ErrorCode::invalid_input,
                    fmt::format("vCPU state: activity state {} is not 0, 1 or 3", activity));
    }
    s.activity = static_cast<ActivityState>(activity);
    const auto& e = p.events();
    s.events.exception_pending = e.exception_pending();
    s.events.exception_vector =
        static_cast<std::uint8_t>(checked(e.exception_vector(), 31, "exception vector"));
    s.events.exception_has_error_code = e.exception_has_error_code();
    s.events.exception_error_code = e.exception_error_code();
    s.events.nmi_pending = e.nmi_pending();
    s.events.nmis_blocked = e.nmis_blocked();
    s.events.interrupt_pending = e.interrupt_pending();
    s.events.interrupt_vector =
        static_cast<std::uint8_t>(checked(e.interrupt_vector(), 255, "interrupt vector"));
    s.events.interruptibility = checked(e.interruptibility(), 0x1f, "interruptibility");
    s.events.sipi_vector = static_cast<std::uint8_t>(checked(e.sipi_vector(), 255, "SIPI vector"));
    return s;
}

} // namespace godwit::vmm
