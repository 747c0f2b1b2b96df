#include "arch/x86/mmio_instruction.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace godwit::hv::x86 {
namespace {

enum class Extend : u8 { none, zero, sign };

struct Expect {
    MmioOp op;
    u8 access_size;
    u8 reg;
    bool high_byte;
    u8 dest_size;
    Extend extend;
    u64 immediate;
};

constexpr Expect load(u8 size, u8 reg) {
    return {MmioOp::load, size, reg, false, size, Extend::none, 0};
}
constexpr Expect load_high(u8 reg) {
    return {MmioOp::load, 1, reg, true, 1, Extend::none, 0};
}
constexpr Expect store(u8 size, u8 reg) {
    return {MmioOp::store_register, size, reg, false, size, Extend::none, 0};
}
constexpr Expect store_high(u8 reg) {
    return {MmioOp::store_register, 1, reg, true, 1, Extend::none, 0};
}
constexpr Expect store_immediate(u8 size, u64 value) {
    return {MmioOp::store_immediate, size, 0, false, size, Extend::none, value};
}
constexpr Expect movzx(u8 size, u8 reg, u8 dest) {
    return {MmioOp::load, size, reg, false, dest, Extend::zero, 0};
}
constexpr Expect movsx(u8 size, u8 reg, u8 dest) {
    return {MmioOp::load, size, reg, false, dest, Extend::sign, 0};
}

constexpr u8 rax = 0, rcx = 1, rdx = 2, rbx = 3, rsp = 4, rbp = 5, rsi = 6, rdi = 7;

struct Case {
    CpuMode mode;
    const char* hex;  // exactly one instruction: its length is the number of bytes here
    const char* text; // what binutils prints for it
    Expect expect;
};

constexpr CpuMode m16 = CpuMode::real16, m32 = CpuMode::protected32, m64 = CpuMode::long64;

// Encodings produced by GNU as 2.40 (Debian 12) from the AT&T source in the second column
// (`as --32` with .code16/.code32, `as --64`) and read back with `objdump -d -w`
// (-Mi8086 for 16-bit code). Rows marked [bytes] were written as .byte and disassembled.
const Case cases[] = {
    // 32-bit code: the IOAPIC/xAPIC accessors of 32-bit kernels.
    {m32, "a3 b0 00 e0 fe", "mov %eax,0xfee000b0", store(4, rax)},
    {m32, "89 15 20 03 e0 fe", "mov %edx,0xfee00320", store(4, rdx)},
    {m32, "a1 90 03 e0 fe", "mov 0xfee00390,%eax", load(4, rax)},
    {m32, "c7 05 00 03 e0 fe 78 56 34 12", "movl $0x12345678,0xfee00300",
     store_immediate(4, 0x12345678)},
    {m32, "89 08", "mov %ecx,(%eax)", store(4, rcx)},
    {m32, "8b 33", "mov (%ebx),%esi", load(4, rsi)},
    {m32, "89 7d 10", "mov %edi,0x10(%ebp)", store(4, rdi)},
    {m32, "89 bd 45 23 01 00", "mov %edi,0x12345(%ebp)", store(4, rdi)},
    {m32, "89 04 24", "mov %eax,(%esp)", store(4, rax)},
    {m32, "89 44 24 08", "mov %eax,0x8(%esp)", store(4, rax)},
    {m32, "89 84 24 00 01 00 00", "mov %eax,0x100(%esp)", store(4, rax)},
    {m32, "89 44 98 20", "mov %eax,0x20(%eax,%ebx,4)", store(4, rax)},
    {m32, "89 04 cd 00 00 e0 fe", "mov %eax,-0x1200000(,%ecx,8)", store(4, rax)},
    {m32, "8b 54 75 00", "mov 0x0(%ebp,%esi,2),%edx", load(4, rdx)},
    {m32, "8b 04 05 00 00 00 00", "mov 0x0(,%eax,1),%eax", load(4, rax)},
    {m32, "88 03", "mov %al,(%ebx)", store(1, rax)},
    {m32, "88 23", "mov %ah,(%ebx)", store_high(rax)},
    {m32, "88 79 01", "mov %bh,0x1(%ecx)", store_high(rbx)},
    {m32, "8a 2a", "mov (%edx),%ch", load_high(rcx)},
    {m32, "8a 12", "mov (%edx),%dl", load(1, rdx)},
    {m32, "66 89 03", "mov %ax,(%ebx)", store(2, rax)},
    {m32, "66 8b 3b", "mov (%ebx),%di", load(2, rdi)},
    {m32, "c6 01 7f", "movb $0x7f,(%ecx)", store_immediate(1, 0x7f)},
    {m32, "66 c7 41 04 ef be", "movw $0xbeef,0x4(%ecx)", store_immediate(2, 0xbeef)},
    {m32, "0f b6 08", "movzbl (%eax),%ecx", movzx(1, rcx, 4)},
    {m32, "0f b7 50 30", "movzwl 0x30(%eax),%edx", movzx(2, rdx, 4)},
    {m32, "0f be 18", "movsbl (%eax),%ebx", movsx(1, rbx, 4)},
    {m32, "0f bf 30", "movswl (%eax),%esi", movsx(2, rsi, 4)},
    {m32, "66 0f b6 08", "movzbw (%eax),%cx", movzx(1, rcx, 2)},
    {m32, "66 0f be 08", "movsbw (%eax),%cx", movsx(1, rcx, 2)},
    {m32, "66 a3 80 00 e0 fe", "mov %ax,0xfee00080", store(2, rax)},
    {m32, "a0 80 00 e0 fe", "mov 0xfee00080,%al", load(1, rax)},
    {m32, "a2 80 00 e0 fe", "mov %al,0xfee00080", store(1, rax)},
    {m32, "64 a1 10 00 00 00", "mov %fs:0x10,%eax", load(4, rax)},
    {m32, "26 8b 07", "mov %es:(%edi),%eax", load(4, rax)},
    {m32, "67 8b 00", "mov (%bx,%si),%eax", load(4, rax)},
    {m32, "67 a3 34 12", "addr16 mov %eax,0x1234", store(4, rax)},
    {m32, "67 8b 86 34 12", "mov 0x1234(%bp),%eax", load(4, rax)},

    // 16-bit code (real mode, and 16-bit protected mode: same table below).
    {m16, "89 00", "mov %ax,(%bx,%si)", store(2, rax)},
    {m16, "89 01", "mov %ax,(%bx,%di)", store(2, rax)},
    {m16, "89 02", "mov %ax,(%bp,%si)", store(2, rax)},
    {m16, "89 03", "mov %ax,(%bp,%di)", store(2, rax)},
    {m16, "89 04", "mov %ax,(%si)", store(2, rax)},
    {m16, "89 05", "mov %ax,(%di)", store(2, rax)},
    {m16, "89 06 34 12", "mov %ax,0x1234 [bytes]", store(2, rax)},
    {m16, "8b 16 00 00", "mov 0x0,%dx [bytes]", load(2, rdx)},
    {m16, "89 07", "mov %ax,(%bx)", store(2, rax)},
    {m16, "a3 34 12", "mov %ax,0x1234", store(2, rax)},
    {m16, "89 4e 12", "mov %cx,0x12(%bp)", store(2, rcx)},
    {m16, "8b 90 34 12", "mov 0x1234(%bx,%si),%dx", load(2, rdx)},
    {m16, "8b 9d 80 00", "mov 0x80(%di),%bx", load(2, rbx)},
    {m16, "66 89 07", "mov %eax,(%bx)", store(4, rax)},
    {m16, "8a 04", "mov (%si),%al", load(1, rax)},
    {m16, "8a 24", "mov (%si),%ah", load_high(rax)},
    {m16, "c6 47 10 05", "movb $0x5,0x10(%bx)", store_immediate(1, 5)},
    {m16, "c7 05 34 12", "movw $0x1234,(%di)", store_immediate(2, 0x1234)},
    {m16, "66 c7 05 44 33 22 11", "movl $0x11223344,(%di)", store_immediate(4, 0x11223344)},
    {m16, "a1 20 03", "mov 0x320,%ax", load(2, rax)},
    {m16, "66 a1 20 03", "mov 0x320,%eax", load(4, rax)},
    {m16, "a2 10 00", "mov %al,0x10", store(1, rax)},
    {m16, "0f b6 07", "movzbw (%bx),%ax", movzx(1, rax, 2)},
    {m16, "66 0f b6 07", "movzbl (%bx),%eax", movzx(1, rax, 4)},
    {m16, "66 0f bf 54 04", "movswl 0x4(%si),%edx", movsx(2, rdx, 4)},
    {m16, "67 66 89 80 b0 00 e0 fe", "mov %eax,-0x11fff50(%eax)", store(4, rax)},
    {m16, "67 66 89 04 58", "mov %eax,(%eax,%ebx,2)", store(4, rax)},
    {m16, "67 66 a3 b0 00 e0 fe", "addr32 mov %eax,0xfee000b0", store(4, rax)},
    {m16, "2e 8b 07", "mov %cs:(%bx),%ax", load(2, rax)},

    // 64-bit code: Linux's xAPIC/IOAPIC accessors and every REX combination.
    {m64, "89 38", "mov %edi,(%rax)", store(4, rdi)},
    {m64, "8b 07", "mov (%rdi),%eax", load(4, rax)},
    {m64, "8b 04 25 20 00 e0 fe", "mov 0xfffffffffee00020,%eax", load(4, rax)},
    {m64, "89 04 25 b0 00 e0 fe", "mov %eax,0xfffffffffee000b0", store(4, rax)},
    {m64, "a1 20 00 e0 fe 00 00 00 00", "movabs 0xfee00020,%eax", load(4, rax)},
    {m64, "a3 b0 00 e0 fe 00 00 00 00", "movabs %eax,0xfee000b0", store(4, rax)},
    {m64, "48 89 02", "mov %rax,(%rdx)", store(8, rax)},
    {m64, "48 8b 02", "mov (%rdx),%rax", load(8, rax)},
    {m64, "44 89 00", "mov %r8d,(%rax)", store(4, 8)},
    {m64, "41 8b 01", "mov (%r9),%eax", load(4, rax)},
    {m64, "41 89 04 24", "mov %eax,(%r12)", store(4, rax)},
    {m64, "41 89 45 00", "mov %eax,0x0(%r13)", store(4, rax)},
    {m64, "4f 89 7c f5 10", "mov %r15,0x10(%r13,%r14,8)", store(8, 15)},
    {m64, "4a 8b 04 25 00 00 00 00", "mov 0x0(,%r12,1),%rax [bytes]", load(8, rax)},
    {m64, "8b 05 78 56 34 12", "mov 0x12345678(%rip),%eax", load(4, rax)},
    {m64, "89 0d f0 ff ff ff", "mov %ecx,-0x10(%rip)", store(4, rcx)},
    {m64, "89 04 24", "mov %eax,(%rsp)", store(4, rax)},
    {m64, "89 84 8d 34 12 00 00", "mov %eax,0x1234(%rbp,%rcx,4)", store(4, rax)},
    {m64, "40 88 30", "mov %sil,(%rax)", store(1, rsi)},
    {m64, "40 88 20", "mov %spl,(%rax)", store(1, rsp)},
    {m64, "88 20", "mov %ah,(%rax)", store_high(rax)},
    {m64, "40 8a 38", "mov (%rax),%dil", load(1, rdi)},
    {m64, "8a 38", "mov (%rax),%bh", load_high(rbx)},
    {m64, "41 8a 20", "mov (%r8),%spl [bytes]", load(1, rsp)},
    {m64, "44 88 13", "mov %r10b,(%rbx)", store(1, 10)},
    {m64, "44 8a 1b", "mov (%rbx),%r11b", load(1, 11)},
    {m64, "66 89 03", "mov %ax,(%rbx)", store(2, rax)},
    {m64, "66 44 89 0b", "mov %r9w,(%rbx)", store(2, 9)},
    {m64, "66 48 89 03", "data16 mov %rax,(%rbx) [bytes]", store(8, rax)},
    {m64, "40 48 89 03", "rex; mov %rax,(%rbx) [bytes]: the last REX counts", store(8, rax)},
    {m64, "48 40 89 03", "rex.W; rex mov %eax,(%rbx) [bytes]", store(4, rax)},
    // SDM Vol. 2, 2.2.1: a REX followed by a legacy prefix is ignored (objdump prints the
    // REX as a separate byte; the CPU runs one 4-byte 16-bit store).
    {m64, "48 66 89 03", "rex.W; mov %ax,(%rbx) [bytes]", store(2, rax)},
    {m64, "2e 3e 26 64 65 36 66 67 89 03", "cs ds es fs gs mov %ax,%gs:(%ebx) [bytes]",
     store(2, rax)},
    {m64, "c6 00 80", "movb $0x80,(%rax)", store_immediate(1, 0x80)},
    {m64, "66 c7 00 01 80", "movw $0x8001,(%rax)", store_immediate(2, 0x8001)},
    {m64, "c7 00 f0 ff ff ff", "movl $0xfffffff0,(%rax)", store_immediate(4, 0xfffffff0)},
    {m64, "48 c7 00 f0 ff ff ff", "movq $0xfffffffffffffff0,(%rax)",
     store_immediate(8, 0xfffffffffffffff0)},
    {m64, "48 c7 40 08 ff ff ff 7f", "movq $0x7fffffff,0x8(%rax)", store_immediate(8, 0x7fffffff)},
    {m64, "0f b6 00", "movzbl (%rax),%eax", movzx(1, rax, 4)},
    {m64, "44 0f b7 10", "movzwl (%rax),%r10d", movzx(2, 10, 4)},
    {m64, "48 0f b6 00", "movzbq (%rax),%rax", movzx(1, rax, 8)},
    {m64, "48 0f b7 08", "movzwq (%rax),%rcx", movzx(2, rcx, 8)},
    {m64, "0f be 00", "movsbl (%rax),%eax", movsx(1, rax, 4)},
    {m64, "4c 0f be 00", "movsbq (%rax),%r8", movsx(1, 8, 8)},
    {m64, "48 0f bf 10", "movswq (%rax),%rdx", movsx(2, rdx, 8)},
    {m64, "66 0f be 00", "movsbw (%rax),%ax", movsx(1, rax, 2)},
    {m64, "48 a1 30 00 e0 fe 00 00 00 00", "movabs 0xfee00030,%rax", load(8, rax)},
    {m64, "a2 b0 00 e0 fe 00 00 00 00", "movabs %al,0xfee000b0", store(1, rax)},
    {m64, "66 a1 30 00 e0 fe 00 00 00 00", "movabs 0xfee00030,%ax", load(2, rax)},
    {m64, "67 a1 30 00 e0 fe", "addr32 mov 0xfee00030,%eax", load(4, rax)},
    {m64, "67 8b 00", "mov (%eax),%eax", load(4, rax)},
    {m64, "67 89 44 24 10", "mov %eax,0x10(%esp)", store(4, rax)},
    {m64, "67 89 05 12 00 00 00", "mov %eax,0x12(%eip)", store(4, rax)},
    {m64, "67 41 89 00", "mov %eax,(%r8d)", store(4, rax)},
    {m64, "64 8b 00", "mov %fs:(%rax),%eax", load(4, rax)},
    {m64, "65 48 8b 04 25 10 00 00 00", "mov %gs:0x10,%rax", load(8, rax)},
};

std::vector<u8> bytes_of(const char* hex) {
    std::vector<u8> out;
    std::string s(hex);
    for (std::size_t i = 0; i < s.size(); i += 3)
        out.push_back(static_cast<u8>(std::strtoul(s.substr(i, 2).c_str(), nullptr, 16)));
    return out;
}

DecodeStatus decode(const std::vector<u8>& bytes, CpuMode mode, MmioInstruction& out) {
    return decode_mmio_instruction(bytes.data(), static_cast<u32>(bytes.size()), mode, out);
}

void check(const Case& c, CpuMode mode) {
    SCOPED_TRACE(std::string(c.hex) + "  " + c.text);
    const std::vector<u8> bytes = bytes_of(c.hex);
    MmioInstruction out{};
    ASSERT_EQ(decode(bytes, mode, out), DecodeStatus::ok);
    EXPECT_EQ(out.length, bytes.size());
    EXPECT_EQ(out.op, c.expect.op);
    EXPECT_EQ(out.access_size, c.expect.access_size);
    if (c.expect.op != MmioOp::store_immediate) {
        EXPECT_EQ(out.reg, c.expect.reg);
        EXPECT_EQ(out.high_byte, c.expect.high_byte);
    }
    EXPECT_EQ(out.dest_size, c.expect.dest_size);
    EXPECT_EQ(out.zero_extend, c.expect.extend == Extend::zero);
    EXPECT_EQ(out.sign_extend, c.expect.extend == Extend::sign);
    EXPECT_EQ(out.immediate, c.expect.immediate);

    // The bytes after the instruction (the next instruction, or a fetch of 15) change nothing.
    std::vector<u8> padded = bytes;
    padded.resize(15, 0x89);
    MmioInstruction again{};
    ASSERT_EQ(decode(padded, mode, again), DecodeStatus::ok);
    EXPECT_EQ(again.length, out.length);
    EXPECT_EQ(again.reg, out.reg);

    // Every shorter prefix of the instruction is reported as truncated.
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        MmioInstruction partial{};
        EXPECT_EQ(decode_mmio_instruction(bytes.data(), static_cast<u32>(n), mode, partial),
                  DecodeStatus::truncated)
            << "with " << n << " bytes";
    }
}

TEST(MmioInstruction, DecodesBinutilsEncodings) {
    for (const Case& c : cases) {
        check(c, c.mode);
        if (c.mode == CpuMode::real16)
            check(c, CpuMode::protected16); // same defaults (CS.D=0)
    }
}

// The same bytes mean different lengths in different modes: the default address size
// decides the ModR/M displacement and moffs sizes, the default operand size the immediate.
TEST(MmioInstruction, LengthDependsOnMode) {
    struct Row {
        const char* hex;
        u8 length16, length32, length64;
    };
    const Row rows[] = {
        // 16: mov %ax,(%bx+disp16)? no: r/m=110 mod=00 is disp16 alone; 32/64: (%esi)/(%rsi).
        {"89 06 34 12 00 00 00 00 00 00 00 00 00 00 00", 4, 2, 2},
        // mod=00 r/m=101: (%di) in 16-bit, disp32 in 32-bit, RIP+disp32 in 64-bit.
        {"8b 05 00 00 00 00 00 00 00 00 00 00 00 00 00", 2, 6, 6},
        // moffs: 2, 4, 8 bytes.
        {"a1 00 00 00 00 00 00 00 00 00 00 00 00 00 00", 3, 5, 9},
        // mod=00 r/m=100: (%si) in 16-bit, SIB in 32/64-bit.
        {"89 04 24 00 00 00 00 00 00 00 00 00 00 00 00", 2, 3, 3},
        // C7 /0 with disp8: imm16 in 16-bit, imm32 otherwise.
        {"c7 40 10 01 02 03 04 00 00 00 00 00 00 00 00", 5, 7, 7},
    };
    for (const Row& r : rows) {
        SCOPED_TRACE(r.hex);
        const std::vector<u8> bytes = bytes_of(r.hex);
        MmioInstruction out{};
        ASSERT_EQ(decode(bytes, CpuMode::real16, out), DecodeStatus::ok);
        EXPECT_EQ(out.length, r.length16);
        ASSERT_EQ(decode(bytes, CpuMode::protected16, out), DecodeStatus::ok);
        EXPECT_EQ(out.length, r.length16);
        ASSERT_EQ(decode(bytes, CpuMode::protected32, out), DecodeStatus::ok);
        EXPECT_EQ(out.length, r.length32);
        ASSERT_EQ(decode(bytes, CpuMode::long64, out), DecodeStatus::ok);
        EXPECT_EQ(out.length, r.length64);
    }
}

// Every 32-bit ModR/M memory form (mod 0-2, all r/m, SIB with and without base) has the
// length Table 2-2 gives; every 16-bit form the length of Table 2-1.
TEST(MmioInstruction, EveryModrmFormHasTheTableLength) {
    for (u32 modrm = 0; modrm < 0xC0; ++modrm) {
        const u32 mod = modrm >> 6, rm = modrm & 7;
        for (u32 sib = 0; sib < 256; sib += 5) { // SIB base bits cycle through 0-7
            const u8 bytes[15] = {0x8b, static_cast<u8>(modrm), static_cast<u8>(sib)};
            u32 expected32 = 2;
            if (rm == 4)
                expected32 += 1 + ((mod == 0 && (sib & 7) == 5) ? 4 : 0);
            expected32 += mod == 1 ? 1 : mod == 2 ? 4 : (rm == 5 ? 4 : 0);
            const u32 expected16 = 2 + (mod == 1 ? 1 : mod == 2 ? 2 : (rm == 6 ? 2 : 0));
            MmioInstruction out{};
            ASSERT_EQ(decode_mmio_instruction(bytes, 15, CpuMode::protected32, out),
                      DecodeStatus::ok);
            EXPECT_EQ(out.length, expected32) << std::hex << modrm << " " << sib;
            EXPECT_EQ(out.reg, (modrm >> 3) & 7);
            ASSERT_EQ(decode_mmio_instruction(bytes, 15, CpuMode::long64, out), DecodeStatus::ok);
            EXPECT_EQ(out.length, expected32);
            ASSERT_EQ(decode_mmio_instruction(bytes, 15, CpuMode::real16, out), DecodeStatus::ok);
            EXPECT_EQ(out.length, expected16);
        }
    }
}

// Differential test against binutils: random MOV-family encodings (random legacy prefixes,
// REX, ModR/M, SIB, displacements, immediates) are decoded here, and the same bytes are
// disassembled by objdump. Both must agree on every instruction's length, its register
// operand (name and width) and its immediate. Needs `as` and `objdump` (binutils, part of
// build-essential); fails without them.
struct RandomCase {
    std::vector<u8> bytes;
    MmioInstruction decoded;
};

std::string register_name(u8 reg, u8 size, bool high_byte) {
    static const char* const names64[] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"};
    static const char* const names32[] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"};
    static const char* const names16[] = {"ax", "cx", "dx", "bx", "sp", "bp", "si", "di"};
    static const char* const names8[] = {"al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil"};
    static const char* const high[] = {"ah", "ch", "dh", "bh"};
    if (high_byte)
        return std::string("%") + high[reg];
    if (reg >= 8) {
        const std::string base = "%r" + std::to_string(reg);
        return size == 8 ? base : size == 4 ? base + "d" : size == 2 ? base + "w" : base + "b";
    }
    switch (size) {
    case 8:
        return std::string("%") + names64[reg];
    case 4:
        return std::string("%") + names32[reg];
    case 2:
        return std::string("%") + names16[reg];
    default:
        return std::string("%") + names8[reg];
    }
}

RandomCase random_case(std::mt19937& rng, CpuMode mode) {
    static const u8 legacy[] = {0x66, 0x67, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65};
    static const u8 opcodes[] = {0x88, 0x89, 0x8a, 0x8b, 0xc6, 0xc7, 0xa0,
                                 0xa1, 0xa2, 0xa3, 0xb6, 0xb7, 0xbe, 0xbf};
    for (;;) {
        std::vector<u8> b;
        const u32 prefixes = rng() % 4;
        for (u32 i = 0; i < prefixes; ++i)
            b.push_back(legacy[rng() % 8]);
        const bool rex = mode == CpuMode::long64 && rng() % 2 == 0;
        if (rex)
            b.push_back(static_cast<u8>(0x40 | (rng() % 16)));
        const u8 opcode = opcodes[rng() % 14];
        if (opcode >= 0xb6 && opcode <= 0xbf)
            b.push_back(0x0f);
        b.push_back(opcode);
        u8 modrm = static_cast<u8>(rng() % 0xc0); // mod 0-2: a memory operand
        if (opcode == 0xc6 || opcode == 0xc7)
            modrm &= 0xc7; // /0
        b.push_back(modrm);
        while (b.size() < 15)
            b.push_back(static_cast<u8>(rng()));
        RandomCase c{b, {}};
        if (decode_mmio_instruction(b.data(), 15, mode, c.decoded) != DecodeStatus::ok)
            continue; // longer than 15 bytes
        c.bytes.resize(c.decoded.length);
        return c;
    }
}

// Splits AT&T operands at commas outside parentheses.
std::vector<std::string> operands_of(const std::string& text) {
    std::vector<std::string> out(1);
    int depth = 0;
    for (char ch : text) {
        if (ch == '(')
            ++depth;
        if (ch == ')')
            --depth;
        if (ch == ',' && depth == 0)
            out.emplace_back();
        else if (ch != ' ')
            out.back() += ch;
    }
    return out;
}

void compare_with_objdump(CpuMode mode, const char* directive, const char* as_flags,
                          const char* objdump_flags) {
    std::mt19937 rng(0x60D817 + static_cast<u32>(mode));
    std::vector<RandomCase> cases;
    std::map<u64, std::size_t> at_offset; // instruction start → case
    u64 offset = 0;
    for (int i = 0; i < 1500; ++i) {
        RandomCase c = random_case(rng, mode);
        at_offset[offset] = cases.size();
        offset += c.bytes.size();
        cases.push_back(std::move(c));
    }

    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() /
        ("godwit-mmio-objdump-" + std::to_string(::getpid()) + "-" + (directive + 1));
    std::filesystem::create_directories(dir);
    struct RemoveOnExit {
        std::filesystem::path path;
        ~RemoveOnExit() { std::filesystem::remove_all(path); } // also after a failed ASSERT
    } cleanup{dir};
    {
        std::ofstream source(dir / "cases.s");
        source << directive << "\n";
        for (const RandomCase& c : cases) {
            source << ".byte ";
            for (std::size_t i = 0; i < c.bytes.size(); ++i)
                source << (i ? "," : "") << int(c.bytes[i]);
            source << "\n";
        }
    }
    const std::string command =
        "as " + std::string(as_flags) + " -o '" + (dir / "cases.o").string() + "' '" +
        (dir / "cases.s").string() + "' && objdump -d -w " + objdump_flags + " '" +
        (dir / "cases.o").string() + "' > '" + (dir / "cases.txt").string() + "'";
    ASSERT_EQ(std::system(command.c_str()), 0) << "binutils (as, objdump) are needed: " << command;

    std::ifstream listing(dir / "cases.txt");
    std::string line;
    std::size_t checked = 0;
    while (std::getline(listing, line)) {
        // "   1f:\t67 66 89 03          \tdata16 mov %ax,(%bp,%di)"
        std::vector<std::string> fields;
        std::stringstream split(line);
        for (std::string f; std::getline(split, f, '\t');)
            fields.push_back(f);
        if (fields.size() < 3 || fields[0].find(':') == std::string::npos)
            continue;
        const u64 address = std::strtoull(fields[0].c_str(), nullptr, 16);
        const auto found = at_offset.find(address);
        ASSERT_NE(found, at_offset.end()) << "objdump decoded a different length before: " << line;
        const RandomCase& c = cases[found->second];
        const MmioInstruction& d = c.decoded;
        std::stringstream bytes_field(fields[1]);
        std::size_t objdump_length = 0;
        for (std::string hex; bytes_field >> hex;)
            ++objdump_length;
        SCOPED_TRACE(line);
        ASSERT_EQ(objdump_length, c.bytes.size());

        // The mnemonic is the first word starting with "mov"; prefixes' names come before it.
        std::stringstream words(fields[2]);
        std::string word, mnemonic;
        while (words >> word && word.rfind("mov", 0) != 0) {
        }
        mnemonic = word;
        ASSERT_EQ(mnemonic.rfind("mov", 0), 0u);
        std::string rest;
        std::getline(words, rest);
        const std::vector<std::string> ops = operands_of(rest.substr(0, rest.find('#')));
        ASSERT_EQ(ops.size(), 2u);
        if (d.op == MmioOp::store_immediate) {
            ASSERT_EQ(ops[0][0], '$');
            EXPECT_EQ(std::strtoull(ops[0].c_str() + 1, nullptr, 16), d.immediate);
            const char suffix = "?bw?l???q"[d.access_size];
            EXPECT_EQ(mnemonic, std::string("mov") + suffix);
        } else {
            const bool load = d.op == MmioOp::load;
            const std::string& reg = load ? ops[1] : ops[0];
            EXPECT_EQ(reg, register_name(d.reg, d.dest_size, d.high_byte));
            if (d.zero_extend || d.sign_extend) {
                // movzbl, movswq, ...: z/s, then the source size
                EXPECT_EQ(mnemonic[3], d.zero_extend ? 'z' : 's');
                EXPECT_EQ(mnemonic[4], d.access_size == 1 ? 'b' : 'w');
            }
        }
        ++checked;
    }
    EXPECT_EQ(checked, cases.size());
}

TEST(MmioInstruction, AgreesWithObjdumpOnRandomEncodings16) {
    compare_with_objdump(CpuMode::real16, ".code16", "--32", "-Mi8086");
}
TEST(MmioInstruction, AgreesWithObjdumpOnRandomEncodings32) {
    compare_with_objdump(CpuMode::protected32, ".code32", "--32", "");
}
TEST(MmioInstruction, AgreesWithObjdumpOnRandomEncodings64) {
    compare_with_objdump(CpuMode::long64, ".code64", "--64", "");
}

TEST(MmioInstruction, RejectsWhatIsNotAMovMemoryAccess) {
    struct Row {
        CpuMode mode;
        const char* hex;
        const char* text; // objdump -d of the .byte sequence
        DecodeStatus status;
    };
    const Row rows[] = {
        {m32, "89 c0", "mov %eax,%eax (no memory operand)", DecodeStatus::invalid},
        {m32, "8a c4", "mov %ah,%al", DecodeStatus::invalid},
        {m32, "0f b6 c0", "movzbl %al,%eax", DecodeStatus::invalid},
        {m32, "c6 08 01", "(bad): C6 /1", DecodeStatus::invalid},
        {m32, "c7 c0 01 02 03 04", "mov $0x4030201,%eax (C7 /0 mod=3)", DecodeStatus::invalid},
        {m64, "c7 f8 00 00 00 00", "xbegin (C7 F8)", DecodeStatus::invalid},
        {m32, "f0 01 08", "lock add %ecx,(%eax)", DecodeStatus::unsupported},
        {m32, "f0 89 08", "lock mov (#UD)", DecodeStatus::unsupported},
        {m32, "f3 a5", "rep movsl", DecodeStatus::unsupported},
        {m32, "f2 89 08", "repnz mov %ecx,(%eax)", DecodeStatus::unsupported},
        {m32, "01 08", "add %ecx,(%eax)", DecodeStatus::unsupported},
        {m32, "87 08", "xchg %ecx,(%eax)", DecodeStatus::unsupported},
        {m32, "0f 10 00", "movups (%eax),%xmm0", DecodeStatus::unsupported},
        {m32, "40 89 08", "inc %eax (REX is INC outside 64-bit mode)", DecodeStatus::unsupported},
        {m32, "8c 18", "mov %ds,(%eax)", DecodeStatus::unsupported},
        {m32, "b8 00 00 e0 fe", "mov $0xfee00000,%eax", DecodeStatus::unsupported},
        {m32, "a5", "movsl", DecodeStatus::unsupported},
        {m64, "63 00", "movslq (%rax),%eax", DecodeStatus::unsupported},
        {m64, "c5 f8 10 00", "vmovups (%rax),%xmm0", DecodeStatus::unsupported},
        {m64, "0f", "two-byte escape, no second byte", DecodeStatus::truncated},
        {m64, "", "nothing fetched", DecodeStatus::truncated},
    };
    for (const Row& r : rows) {
        SCOPED_TRACE(std::string(r.hex) + "  " + r.text);
        MmioInstruction out{};
        EXPECT_EQ(decode(bytes_of(r.hex), r.mode, out), r.status);
    }
}

// SDM Vol. 2, 2.3.11: an instruction longer than 15 bytes raises #GP.
TEST(MmioInstruction, FifteenBytesAtMost) {
    std::vector<u8> bytes(13, 0x3e); // DS prefixes
    bytes.push_back(0x89);
    bytes.push_back(0x03);
    MmioInstruction out{};
    ASSERT_EQ(decode(bytes, CpuMode::protected32, out), DecodeStatus::ok);
    EXPECT_EQ(out.length, 15);

    bytes.insert(bytes.begin(), 0x3e); // 16 bytes
    EXPECT_EQ(decode(bytes, CpuMode::protected32, out), DecodeStatus::invalid);

    const std::vector<u8> prefixes_only(20, 0x66);
    EXPECT_EQ(decode(prefixes_only, CpuMode::long64, out), DecodeStatus::invalid);

    // 14 prefixes and a moffs store whose offset runs past byte 15.
    std::vector<u8> moffs(14, 0x2e);
    moffs.push_back(0xa3);
    moffs.resize(20, 0);
    EXPECT_EQ(decode(moffs, CpuMode::protected32, out), DecodeStatus::invalid);
}

TEST(MmioInstruction, CpuModeFromGuestState) {
    constexpr u64 pe = 1, lma = 1 << 10, vm = 1 << 17;
    EXPECT_EQ(cpu_mode_of(0, 0, 0, false, false), CpuMode::real16);
    EXPECT_EQ(cpu_mode_of(0, 0, 0, false, true), CpuMode::real16);
    EXPECT_EQ(cpu_mode_of(pe, 0, vm, false, true), CpuMode::real16); // virtual-8086
    EXPECT_EQ(cpu_mode_of(pe, 0, 0, false, false), CpuMode::protected16);
    EXPECT_EQ(cpu_mode_of(pe, 0, 0, false, true), CpuMode::protected32);
    EXPECT_EQ(cpu_mode_of(pe, lma, 0, true, false), CpuMode::long64);
    EXPECT_EQ(cpu_mode_of(pe, lma, 0, false, true), CpuMode::protected32); // compatibility
    EXPECT_EQ(cpu_mode_of(pe, lma, 0, false, false), CpuMode::protected16);
    EXPECT_EQ(cpu_mode_of(pe, 0, 0, true, false), CpuMode::protected16); // L without LMA
}

MmioInstruction decoded(const char* hex, CpuMode mode) {
    MmioInstruction out{};
    EXPECT_EQ(decode(bytes_of(hex), mode, out), DecodeStatus::ok) << hex;
    return out;
}

constexpr u64 fill = 0x1111222233334444; // every register before a load

TEST(MmioInstruction, CompleteLoadWritesLikeTheCpu) {
    auto after = [](const MmioInstruction& i, u64 value, u8 reg) {
        u64 gprs[16];
        for (u64& g : gprs)
            g = fill;
        complete_load(i, value, gprs);
        for (u8 r = 0; r < 16; ++r) {
            if (r != reg) {
                EXPECT_EQ(gprs[r], fill) << "register " << int(r) << " changed";
            }
        }
        return gprs[reg];
    };
    // 32-bit load: bits 63:32 cleared.
    EXPECT_EQ(after(decoded("8b 07", m64), 0xFFFFFFFFAABBCCDD, rax), 0xAABBCCDDull);
    // 64-bit load.
    EXPECT_EQ(after(decoded("48 8b 02", m64), 0x8877665544332211, rax), 0x8877665544332211ull);
    // 16-bit load keeps bits 63:16.
    EXPECT_EQ(after(decoded("66 8b 3b", m32), 0xFFFFBEEF, rdi), 0x111122223333BEEFull);
    // 8-bit loads: AL keeps the rest, BH writes bits 15:8, DIL (REX) the low byte of RDI.
    EXPECT_EQ(after(decoded("8a 12", m32), 0x1FF, rdx), 0x11112222333344FFull);
    EXPECT_EQ(after(decoded("8a 38", m64), 0xAB, rbx), 0x111122223333AB44ull);
    EXPECT_EQ(after(decoded("40 8a 38", m64), 0xAB, rdi), 0x11112222333344ABull);
    EXPECT_EQ(after(decoded("44 8a 1b", m64), 0xAB, 11), 0x11112222333344ABull);
    // MOVZX/MOVSX.
    EXPECT_EQ(after(decoded("0f b6 08", m32), 0x80, rcx), 0x80ull);
    EXPECT_EQ(after(decoded("0f be 18", m32), 0x80, rbx), 0xFFFFFF80ull);
    EXPECT_EQ(after(decoded("4c 0f be 00", m64), 0x80, 8), 0xFFFFFFFFFFFFFF80ull);
    EXPECT_EQ(after(decoded("48 0f bf 10", m64), 0x8000, rdx), 0xFFFFFFFFFFFF8000ull);
    EXPECT_EQ(after(decoded("48 0f b7 08", m64), 0xFFFF8000, rcx), 0x8000ull);
    EXPECT_EQ(after(decoded("66 0f be 08", m32), 0xFE, rcx), 0x111122223333FFFEull);
    EXPECT_EQ(after(decoded("0f be 18", m32), 0x7F, rbx), 0x7Full);
    // moffs into AL / AX / RAX.
    EXPECT_EQ(after(decoded("a0 80 00 e0 fe", m32), 0x5A, rax), 0x111122223333445Aull);
    EXPECT_EQ(after(decoded("66 a1 30 00 e0 fe 00 00 00 00", m64), 0x5A5A, rax),
              0x1111222233335A5Aull);
}

TEST(MmioInstruction, StoreValueIsMaskedToTheAccess) {
    u64 gprs[16];
    for (u32 i = 0; i < 16; ++i)
        gprs[i] = 0x0102030405060708ull * (i + 1);
    EXPECT_EQ(store_value(decoded("89 38", m64), gprs), gprs[rdi] & 0xFFFFFFFF);
    EXPECT_EQ(store_value(decoded("48 89 02", m64), gprs), gprs[rax]);
    EXPECT_EQ(store_value(decoded("66 44 89 0b", m64), gprs), gprs[9] & 0xFFFF);
    EXPECT_EQ(store_value(decoded("88 23", m32), gprs), (gprs[rax] >> 8) & 0xFF);    // AH
    EXPECT_EQ(store_value(decoded("88 79 01", m32), gprs), (gprs[rbx] >> 8) & 0xFF); // BH
    EXPECT_EQ(store_value(decoded("40 88 30", m64), gprs), gprs[rsi] & 0xFF);        // SIL
    EXPECT_EQ(store_value(decoded("44 88 13", m64), gprs), gprs[10] & 0xFF);         // R10B
    EXPECT_EQ(store_value(decoded("a3 b0 00 e0 fe", m32), gprs), gprs[rax] & 0xFFFFFFFF);
    EXPECT_EQ(store_value(decoded("c7 05 00 03 e0 fe 78 56 34 12", m32), gprs), 0x12345678u);
    EXPECT_EQ(store_value(decoded("48 c7 00 f0 ff ff ff", m64), gprs), 0xFFFFFFFFFFFFFFF0ull);
    EXPECT_EQ(store_value(decoded("c6 00 80", m64), gprs), 0x80u);
}

} // namespace
} // namespace godwit::hv::x86
