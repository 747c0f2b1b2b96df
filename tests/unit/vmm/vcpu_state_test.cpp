#include "godwit/vmm/vcpu_state.hpp"

#include "test_support.hpp"

using namespace godwit::vmm;
using godwit::ErrorCode;

TEST(VcpuState, ResetStateMatchesTheSdm) {
    VcpuState bsp = reset_vcpu_state(true);
    EXPECT_EQ(bsp.rip, 0xfff0u);
    EXPECT_EQ(bsp.cs.selector, 0xf000);
    EXPECT_EQ(bsp.cs.base, 0xffff0000u);
    EXPECT_EQ(bsp.cr0, 0x60000010u);
    EXPECT_EQ(bsp.pat, 0x0007040600070406u);
    EXPECT_TRUE(bsp.apic_base & (1u << 8));
    EXPECT_EQ(bsp.activity, ActivityState::active);
    VcpuState ap = reset_vcpu_state(false);
    EXPECT_FALSE(ap.apic_base & (1u << 8));
    EXPECT_EQ(ap.activity, ActivityState::wait_for_sipi);
}

TEST(VcpuState, ProtobufRoundTripKeepsEveryField) {
    VcpuState s = reset_vcpu_state(true);
    std::uint64_t v = 0x1000;
    for (std::uint64_t* r : {&s.rax,
                             &s.rcx,
                             &s.rdx,
                             &s.rbx,
                             &s.rsp,
                             &s.rbp,
                             &s.rsi,
                             &s.rdi,
                             &s.r8,
                             &s.r9,
                             &s.r10,
                             &s.r11,
                             &s.r12,
                             &s.r13,
                             &s.r14,
                             &s.r15,
                             &s.rip,
                             &s.cr2,
                             &s.cr3,
                             &s.dr0,
                             &s.dr1,
                             &s.dr2,
                             &s.dr3,
                             &s.tsc,
                             &s.star,
                             &s.lstar,
                             &s.cstar,
                             &s.fmask,
                             &s.kernel_gs_base,
                             &s.tsc_aux,
                             &s.sysenter_cs,
                             &s.sysenter_esp,
                             &s.sysenter_eip}) {
        *r = v++ * 0x1'0000'0001;
    }
    s.cr0 = 0x80050033;
    s.cr4 = 0x3406f0;
    s.cr8 = 2;
    s.efer = 0xd01;
    s.pat = 0x0007010600070106;
    s.xcr0 = 7;
    s.cs = {0x10, 0, 0xffffffff, 0xa09b};
    s.tr = {0x40, 0xfffffe0000001000, 0x67, 0x8b};
    s.ldtr = {0, 0, 0, 0x10000};
    s.gdtr = {0xfffffe0000000000, 0x7f};
    s.idtr = {0xfffffe0000002000, 0xfff};
    s.xsave_area.assign(4096, 0);
    s.xsave_area[0] = 0x7f;
    s.xsave_area[4095] = 0x11;
    s.activity = ActivityState::halted;
    s.events = {.exception_pending = true,
                .exception_vector = 14,
                .exception_has_error_code = true,
                .exception_error_code = 6,
                .nmi_pending = true,
                .nmis_blocked = true,
                .interrupt_pending = true,
                .interrupt_vector = 0xec,
                .interruptibility = 1,
                .sipi_vector = 0x9a};
    VcpuState back = parse_vcpu_state(serialize_vcpu_state(s));
    EXPECT_EQ(back, s);
}

TEST(VcpuState, RejectsGarbageAndOtherVersions) {
    expect_error(ErrorCode::invalid_input, "not a VcpuState",
                 [] { parse_vcpu_state(std::string("\xff\xff\xff\xff", 4)); });
    // An empty message parses but has version 0.
    expect_error(ErrorCode::unsupported, "version 0", [] { parse_vcpu_state(""); });
    std::string good = serialize_vcpu_state(reset_vcpu_state(false));
    EXPECT_EQ(parse_vcpu_state(good).activity, ActivityState::wait_for_sipi);
    // Truncating the encoding breaks it.
    expect_error(ErrorCode::invalid_input, "",
                 [&] { parse_vcpu_state(good.substr(0, good.size() / 2)); });
}
