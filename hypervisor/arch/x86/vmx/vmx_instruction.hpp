// The instruction a vCPU exited on, for the exits that report neither its bytes nor its
// operands (EPT violations on MMIO pages): the GPR file in instruction-encoding order and
// the bytes at CS:RIP, fetched through the guest's own page tables (guest_paging.hpp).
// Shared by guest partitions (MMIO emulation) and the root (its local APIC's ICR writes).
#pragma once

#include "arch/x86/guest_paging.hpp"
#include "arch/x86/mmio_instruction.hpp"
#include "arch/x86/vmx/vmx_vcpu.hpp"

namespace godwit::hv {

// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15; RSP lives in the VMCS.
void read_gprs(VmxVcpu& v, u64 (&gprs)[16]);
void write_gprs(VmxVcpu& v, const u64 (&gprs)[16]);

struct CurrentInstruction {
    u64 linear; // CS.base + RIP (wrapped at 4 GiB outside 64-bit mode)
    x86::CpuMode mode;
    u8 bytes[x86::max_instruction_length];
    u32 count; // bytes fetched; 0 = the first byte is not readable
    x86::DecodeStatus status;
    x86::MmioInstruction decoded; // valid when status == ok
};

// Fetches and decodes the instruction at CS:RIP with the walk the CPU did: the real CR0/CR4
// (the bits the hypervisor owns, NE and VMXE, do not affect paging) and, under PAE, the
// PDPTEs VM entry loaded (Vol. 3C 26.3.2.4).
CurrentInstruction decode_current_instruction(VmxVcpu& v, x86::GuestPhysicalReader& reader);

// Why decode_current_instruction failed, for logs.
const char* decode_failure(const CurrentInstruction& instruction);

} // namespace godwit::hv
