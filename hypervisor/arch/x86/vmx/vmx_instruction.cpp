#include "arch/x86/vmx/vmx_instruction.hpp"

#include "arch/x86/vmx/vmcs_fields.hpp"

namespace godwit::hv {

using vmx::VmcsField;

void read_gprs(VmxVcpu& v, u64 (&gprs)[16]) {
    const GuestRegisters& r = v.regs;
    u64 values[16] = {r.rax, r.rcx, r.rdx, r.rbx, v.read(VmcsField::guest_rsp),
                      r.rbp, r.rsi, r.rdi, r.r8,  r.r9,
                      r.r10, r.r11, r.r12, r.r13, r.r14,
                      r.r15};
    for (int i = 0; i < 16; ++i)
        gprs[i] = values[i];
}

void write_gprs(VmxVcpu& v, const u64 (&gprs)[16]) {
    GuestRegisters& r = v.regs;
    u64* slots[16] = {&r.rax, &r.rcx, &r.rdx, &r.rbx, nullptr, &r.rbp, &r.rsi, &r.rdi,
                      &r.r8,  &r.r9,  &r.r10, &r.r11, &r.r12,  &r.r13, &r.r14, &r.r15};
    for (int i = 0; i < 16; ++i) {
        if (slots[i] != nullptr)
            *slots[i] = gprs[i];
    }
    v.write(VmcsField::guest_rsp, gprs[4]);
}

CurrentInstruction decode_current_instruction(VmxVcpu& v, x86::GuestPhysicalReader& reader) {
    CurrentInstruction out{};
    u64 pdptes[4] = {v.read(VmcsField::guest_pdpte0), v.read(VmcsField::guest_pdpte1),
                     v.read(VmcsField::guest_pdpte2), v.read(VmcsField::guest_pdpte3)};
    x86::PagingContext paging{v.read(VmcsField::guest_cr0), v.read(VmcsField::guest_cr3),
                              v.read(VmcsField::guest_cr4), v.read(VmcsField::guest_efer)};
    if (x86::paging_mode(paging) == x86::PagingMode::pae)
        paging.pae_pdptes = pdptes;
    u64 cs_access = v.read(VmcsField::guest_cs_access_rights);
    out.mode = x86::cpu_mode_of(paging.cr0, paging.efer, v.read(VmcsField::guest_rflags),
                                (cs_access & (1u << 13)) != 0, (cs_access & (1u << 14)) != 0);
    out.linear = v.read(VmcsField::guest_cs_base) + v.read(VmcsField::guest_rip);
    if (out.mode != x86::CpuMode::long64)
        out.linear &= 0xFFFFFFFFu;
    out.count = x86::fetch_instruction(paging, out.linear, out.bytes, reader);
    out.status = out.count == 0
                     ? x86::DecodeStatus::truncated
                     : x86::decode_mmio_instruction(out.bytes, out.count, out.mode, out.decoded);
    return out;
}

const char* decode_failure(const CurrentInstruction& instruction) {
    if (instruction.count == 0)
        return "not fetchable";
    switch (instruction.status) {
    case x86::DecodeStatus::ok:
        return "decoded";
    case x86::DecodeStatus::unsupported:
        return "unsupported";
    case x86::DecodeStatus::truncated:
        return "truncated";
    case x86::DecodeStatus::invalid:
        break;
    }
    return "invalid";
}

} // namespace godwit::hv
