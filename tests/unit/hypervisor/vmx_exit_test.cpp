#include "arch/x86/vmx/vmx_event.hpp"
#include "arch/x86/vmx/vmx_exit.hpp"

#include <string>

#include <gtest/gtest.h>

namespace godwit::hv::vmx {
namespace {

TEST(VmxExit, ReasonField) {
    auto r = decode_exit_reason(0x80000021);
    EXPECT_EQ(r.basic, 33);
    EXPECT_TRUE(r.entry_failure);
    EXPECT_EQ(std::string(exit_reason_name(48)), "EPT violation");
    EXPECT_EQ(std::string(exit_reason_name(999)), "unhandled exit reason");
}

// NMI exiting: which exits are NMIs, and when one may be injected (Vol. 3C 25.9.2, 26.3.1.5).
TEST(VmxExit, NmiEvents) {
    EXPECT_EQ(nmi_injection, 0x80000202u);
    EXPECT_TRUE(is_nmi_exit(0x80000202u));
    EXPECT_TRUE(is_nmi_exit(0x80001202u));  // with "NMI unblocking due to IRET"
    EXPECT_FALSE(is_nmi_exit(0x00000202u)); // not valid
    EXPECT_FALSE(is_nmi_exit(0x80000b0du)); // #GP: hardware exception with error code
    EXPECT_FALSE(is_nmi_exit(0x80000603u)); // INT3: software exception
    EXPECT_FALSE(is_nmi_exit(0));
    EXPECT_TRUE(nmi_injectable(0));
    EXPECT_TRUE(nmi_injectable(1u << 2)); // blocking by SMI: not ours to honour
    EXPECT_FALSE(nmi_injectable(blocking_by_sti));
    EXPECT_FALSE(nmi_injectable(blocking_by_mov_ss));
    EXPECT_FALSE(nmi_injectable(blocking_by_nmi));
}

TEST(VmxExit, CrAccess) {
    auto c = decode_cr_access(0x0000000000000304); // mov to CR4 from RBX
    EXPECT_EQ(c.cr, 4);
    EXPECT_EQ(c.access, 0);
    EXPECT_EQ(c.gpr, 3);
    auto lmsw = decode_cr_access(0x000F0030);
    EXPECT_EQ(lmsw.access, 3);
    EXPECT_EQ(lmsw.lmsw_source, 0xF);
}

TEST(VmxExit, Io) {
    auto out80 = decode_io(0x00800000); // OUT 1 byte to 0x80
    EXPECT_EQ(out80.port, 0x80);
    EXPECT_EQ(out80.size, 1);
    EXPECT_FALSE(out80.in);
    auto rep_insw = decode_io(0x01F00039); // IN, string, rep, 2 bytes, port 0x1F0
    EXPECT_EQ(rep_insw.size, 2);
    EXPECT_TRUE(rep_insw.in && rep_insw.string && rep_insw.rep);
    EXPECT_EQ(rep_insw.port, 0x1F0);
}

TEST(VmxExit, EptViolation) {
    auto v = decode_ept_violation(0x182); // write to a present, readable-only page
    EXPECT_TRUE(v.write);
    EXPECT_FALSE(v.read || v.execute);
    EXPECT_TRUE(v.linear_address_valid && v.caused_by_translation);
    EXPECT_FALSE(v.writable);
}

TEST(VmxExit, InstructionErrors) {
    EXPECT_EQ(std::string(vm_instruction_error_text(7)), "VM entry with invalid control field(s)");
    EXPECT_EQ(std::string(vm_instruction_error_text(8)),
              "VM entry with invalid host-state field(s)");
    EXPECT_EQ(std::string(vm_instruction_error_text(1234)), "unknown VM-instruction error");
}

} // namespace
} // namespace godwit::hv::vmx
