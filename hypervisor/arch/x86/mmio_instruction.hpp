// Decoding the guest instruction that touched an MMIO page, and applying its result (Intel
// SDM Vol. 2: 2.1 instruction format, 2.1.5 ModR/M and SIB, 2.2.1 REX; the MOV, MOVZX and
// MOVSX pages). An EPT violation reports the guest-physical address but neither the data nor
// the instruction length, so the hypervisor decodes the instruction (fetched with
// fetch_instruction, guest_paging.hpp) to learn the direction, the access size, the register
// or immediate, and how far to advance RIP.
//
// Only the MOV family is accepted: 88/89/8A/8B with a memory operand, C6 /0, C7 /0, A0-A3
// (moffs), 0F B6/B7 (MOVZX), 0F BE/BF (MOVSX). Those are what guests use for xAPIC, IOAPIC
// and device registers; anything else (read-modify-write, string, LOCK/REP) is `unsupported`
// and the caller injects a fault or stops the partition. The effective address is not
// computed: the exit already gives the guest-physical address. Pure and freestanding.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv::x86 {

// The default operand/address size of the code being run.
enum class CpuMode : u8 { real16, protected16, protected32, long64 };

// The mode from the guest's CR0.PE, EFER.LMA, RFLAGS.VM and CS's L and D/B bits (SDM Vol. 3A
// 3.4.5): 64-bit when LMA and CS.L; otherwise CS.D selects 32 or 16 bits in protected and
// compatibility mode; real and virtual-8086 mode are 16-bit.
CpuMode cpu_mode_of(u64 cr0, u64 efer, u64 rflags, bool cs_long, bool cs_default_32);

enum class MmioOp : u8 {
    load,            // memory → register (MOV r,m; MOV AL/eAX,moffs; MOVZX; MOVSX)
    store_register,  // register → memory (MOV m,r; MOV moffs,AL/eAX)
    store_immediate, // immediate → memory (MOV m,imm)
};

struct MmioInstruction {
    MmioOp op;
    u8 length;      // bytes including prefixes: RIP advances by this much
    u8 access_size; // bytes of the memory operand: 1, 2, 4 or 8
    // GPR in encoding order (0=RAX 1=RCX 2=RDX 3=RBX 4=RSP 5=RBP 6=RSI 7=RDI, 8-15=R8-R15),
    // for loads and register stores. With high_byte, `reg` is 0-3 and the operand is bits
    // 15:8 of it (AH, CH, DH, BH: byte registers 4-7 without a REX prefix).
    u8 reg;
    bool high_byte;
    u8 dest_size;     // loads: register width written (1, 2, 4, 8); stores: = access_size
    bool sign_extend; // MOVSX: the loaded value is sign-extended to dest_size
    bool zero_extend; // MOVZX: the loaded value is zero-extended to dest_size
    u64 immediate;    // store_immediate: the value, already extended and masked to access_size
};

enum class DecodeStatus : u8 {
    ok,
    truncated,   // the bytes end before the instruction does (fetch more, or the page is gone)
    unsupported, // a valid instruction, but not a MOV-family memory access (or LOCK/REP)
    invalid,     // no memory operand (ModR/M mod=3), a #UD encoding, or longer than 15 bytes
};

// Decodes the instruction at bytes[0..count) (bytes past 15 are never looked at).
DecodeStatus decode_mmio_instruction(const u8* bytes, u32 count, CpuMode mode,
                                     MmioInstruction& out);

// Writes a load's value into the GPR file (encoding order, 16 entries) with x86 semantics:
// 8- and 16-bit writes keep the rest of the register (AH..BH write bits 15:8), 32-bit writes
// zero bits 63:32, MOVZX/MOVSX extend first. `value` holds the access_size bytes read.
void complete_load(const MmioInstruction& instruction, u64 value, u64 (&gprs)[16]);

// The value a store writes, masked to access_size.
u64 store_value(const MmioInstruction& instruction, const u64 (&gprs)[16]);

} // namespace godwit::hv::x86
