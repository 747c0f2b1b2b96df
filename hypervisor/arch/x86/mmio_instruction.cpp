#include "arch/x86/mmio_instruction.hpp"

namespace godwit::hv::x86 {
namespace {

constexpr u32 max_length = 15; // SDM Vol. 2, 2.3.11: longer instructions raise #GP

constexpr u64 cr0_pe = 1ull << 0;
constexpr u64 efer_lma = 1ull << 10;
constexpr u64 rflags_vm = 1ull << 17;

constexpr u64 mask_of(u32 size) {
    return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

// Reads the instruction byte by byte; never looks past `count` or past byte 15.
class Cursor {
  public:
    Cursor(const u8* bytes, u32 count) : bytes_(bytes), count_(count) {}

    bool take(u8& value) {
        if (position_ >= max_length) {
            status_ = DecodeStatus::invalid;
            return false;
        }
        if (position_ >= count_) {
            status_ = DecodeStatus::truncated;
            return false;
        }
        value = bytes_[position_++];
        return true;
    }
    // A little-endian field of `size` bytes (displacement, immediate, moffs).
    bool take_field(u32 size, u64& value) {
        value = 0;
        for (u32 i = 0; i < size; ++i) {
            u8 b = 0;
            if (!take(b))
                return false;
            value |= u64{b} << (8 * i);
        }
        return true;
    }
    u32 position() const { return position_; }
    DecodeStatus status() const { return status_; }

  private:
    const u8* bytes_;
    u32 count_;
    u32 position_ = 0;
    DecodeStatus status_ = DecodeStatus::ok;
};

struct Prefixes {
    bool operand_size = false; // 66
    bool address_size = false; // 67
    u8 rex = 0;                // 40-4F in 64-bit mode, 0 = none

    bool rex_w() const { return rex & 8; }
    u8 rex_r() const { return (rex & 4) ? 8 : 0; }
};

// Legacy prefixes and REX (SDM Vol. 2, 2.1.1 and 2.2.1). A REX byte counts only when it
// immediately precedes the opcode: a legacy prefix after it cancels it. Returns the opcode.
bool take_prefixes(Cursor& cursor, CpuMode mode, Prefixes& prefixes, u8& opcode,
                   DecodeStatus& status) {
    for (;;) {
        u8 b = 0;
        if (!cursor.take(b)) {
            status = cursor.status();
            return false;
        }
        switch (b) {
        case 0x66:
            prefixes.operand_size = true;
            prefixes.rex = 0;
            continue;
        case 0x67:
            prefixes.address_size = true;
            prefixes.rex = 0;
            continue;
        case 0x26: // ES, CS, SS, DS, FS, GS: the exit already gives the guest-physical address
        case 0x2E:
        case 0x36:
        case 0x3E:
        case 0x64:
        case 0x65:
            prefixes.rex = 0;
            continue;
        case 0xF0: // LOCK: an atomic read-modify-write on a device register is not emulated
        case 0xF2: // REPNE/REP and REP: string operations
        case 0xF3:
            status = DecodeStatus::unsupported;
            return false;
        default:
            break;
        }
        if (mode == CpuMode::long64 && (b & 0xF0) == 0x40) {
            prefixes.rex = b;
            continue;
        }
        opcode = b;
        return true;
    }
}

// Skips the memory operand after a ModR/M byte: SIB and displacement (SDM Vol. 2, 2.1.5
// tables 2-1 to 2-3). 64-bit mode's mod=00 r/m=101 is RIP-relative with the same disp32.
DecodeStatus skip_memory_operand(Cursor& cursor, u8 modrm, u32 address_bytes) {
    const u8 mod = modrm >> 6;
    const u8 rm = modrm & 7;
    if (mod == 3)
        return DecodeStatus::invalid; // a register operand: this instruction touches no memory
    u32 displacement = 0;
    if (address_bytes == 2) {
        // 16-bit forms: [BX+SI] ... [BX], disp16 alone at mod=00 r/m=110, no SIB.
        if (mod == 1)
            displacement = 1;
        else if (mod == 2 || rm == 6)
            displacement = 2;
    } else {
        if (rm == 4) {
            u8 sib = 0;
            if (!cursor.take(sib))
                return cursor.status();
            if (mod == 0 && (sib & 7) == 5)
                displacement = 4; // no base register, disp32
        }
        if (mod == 1)
            displacement = 1;
        else if (mod == 2 || (mod == 0 && rm == 5))
            displacement = 4;
    }
    u64 ignored = 0;
    if (!cursor.take_field(displacement, ignored))
        return cursor.status();
    return DecodeStatus::ok;
}

// A ModR/M register operand of byte size: without REX, 4-7 are AH, CH, DH, BH; with any REX
// they are SPL, BPL, SIL, DIL (SDM Vol. 2, 3.1.1.1 and table 3-1).
void set_byte_register(const Prefixes& prefixes, u8 number, MmioInstruction& out) {
    if (prefixes.rex == 0 && number >= 4 && number < 8) {
        out.reg = number - 4;
        out.high_byte = true;
    } else {
        out.reg = number;
    }
}

} // namespace

CpuMode cpu_mode_of(u64 cr0, u64 efer, u64 rflags, bool cs_long, bool cs_default_32) {
    if (!(cr0 & cr0_pe) || (rflags & rflags_vm))
        return CpuMode::real16;
    if ((efer & efer_lma) && cs_long)
        return CpuMode::long64;
    return cs_default_32 ? CpuMode::protected32 : CpuMode::protected16;
}

DecodeStatus decode_mmio_instruction(const u8* bytes, u32 count, CpuMode mode,
                                     MmioInstruction& out) {
    out = MmioInstruction{};
    Cursor cursor(bytes, count);
    Prefixes prefixes;
    u8 opcode = 0;
    DecodeStatus status = DecodeStatus::ok;
    if (!take_prefixes(cursor, mode, prefixes, opcode, status))
        return status;

    const bool default_16 = mode == CpuMode::real16 || mode == CpuMode::protected16;
    const u8 operand_bytes = prefixes.rex_w() ? 8 : (default_16 != prefixes.operand_size) ? 2 : 4;
    u32 address_bytes = 0;
    if (mode == CpuMode::long64)
        address_bytes = prefixes.address_size ? 4 : 8;
    else
        address_bytes = (default_16 != prefixes.address_size) ? 2 : 4;

    bool byte_register = false; // the register operand is 8-bit (88, 8A)
    bool immediate = false;     // C6, C7
    switch (opcode) {
    case 0x88:
    case 0x8A:
        out.op = opcode == 0x88 ? MmioOp::store_register : MmioOp::load;
        out.access_size = 1;
        byte_register = true;
        break;
    case 0x89:
    case 0x8B:
        out.op = opcode == 0x89 ? MmioOp::store_register : MmioOp::load;
        out.access_size = operand_bytes;
        break;
    case 0xC6:
    case 0xC7:
        out.op = MmioOp::store_immediate;
        out.access_size = opcode == 0xC6 ? 1 : operand_bytes;
        immediate = true;
        break;
    case 0xA0:
    case 0xA1:
    case 0xA2:
    case 0xA3: {
        // MOV AL/eAX <-> moffs: no ModR/M, an address-size offset, always the accumulator.
        out.op = (opcode & 2) ? MmioOp::store_register : MmioOp::load;
        out.access_size = (opcode & 1) ? operand_bytes : 1;
        out.dest_size = out.access_size;
        u64 offset = 0;
        if (!cursor.take_field(address_bytes, offset))
            return cursor.status();
        out.length = static_cast<u8>(cursor.position());
        return DecodeStatus::ok;
    }
    case 0x0F: {
        u8 second = 0;
        if (!cursor.take(second))
            return cursor.status();
        if (second != 0xB6 && second != 0xB7 && second != 0xBE && second != 0xBF)
            return DecodeStatus::unsupported;
        out.op = MmioOp::load;
        out.access_size = (second & 1) ? 2 : 1;
        out.dest_size = operand_bytes;
        out.zero_extend = second <= 0xB7;
        out.sign_extend = second >= 0xBE;
        break;
    }
    default:
        return DecodeStatus::unsupported;
    }

    u8 modrm = 0;
    if (!cursor.take(modrm))
        return cursor.status();
    const u8 reg_field = ((modrm >> 3) & 7) | prefixes.rex_r();
    if (immediate && (modrm & 0x38) != 0)
        return DecodeStatus::invalid; // only /0 is MOV (C6 F8 / C7 F8 are XABORT / XBEGIN)
    if (const DecodeStatus s = skip_memory_operand(cursor, modrm, address_bytes);
        s != DecodeStatus::ok)
        return s;

    if (immediate) {
        // imm8, imm16 or imm32; with REX.W the imm32 is sign-extended to 64 bits.
        const u32 immediate_bytes = out.access_size == 8 ? 4 : out.access_size;
        u64 value = 0;
        if (!cursor.take_field(immediate_bytes, value))
            return cursor.status();
        if (out.access_size == 8 && (value & 0x80000000))
            value |= 0xFFFFFFFF00000000ull;
        out.immediate = value & mask_of(out.access_size);
    } else if (byte_register) {
        set_byte_register(prefixes, reg_field, out);
    } else {
        out.reg = reg_field;
    }
    if (out.dest_size == 0)
        out.dest_size = out.access_size;
    out.length = static_cast<u8>(cursor.position());
    return DecodeStatus::ok;
}

void complete_load(const MmioInstruction& instruction, u64 value, u64 (&gprs)[16]) {
    const u32 size = instruction.access_size;
    u64 v = value & mask_of(size);
    if (instruction.sign_extend && size < 8) {
        const u64 sign = 1ull << (8 * size - 1);
        v = (v ^ sign) - sign;
    }
    u64& r = gprs[instruction.reg & 15];
    switch (instruction.dest_size) {
    case 1:
        if (instruction.high_byte)
            r = (r & ~0xFF00ull) | ((v & 0xFF) << 8);
        else
            r = (r & ~0xFFull) | (v & 0xFF);
        break;
    case 2:
        r = (r & ~0xFFFFull) | (v & 0xFFFF);
        break;
    case 4:
        r = v & 0xFFFFFFFF; // SDM Vol. 1, 3.4.1.1: 32-bit results zero-extend to 64 bits
        break;
    default:
        r = v;
        break;
    }
}

u64 store_value(const MmioInstruction& instruction, const u64 (&gprs)[16]) {
    const u64 mask = mask_of(instruction.access_size);
    if (instruction.op == MmioOp::store_immediate)
        return instruction.immediate & mask;
    const u64 r = gprs[instruction.reg & 15];
    if (instruction.high_byte)
        return (r >> 8) & 0xFF;
    return r & mask;
}

} // namespace godwit::hv::x86
