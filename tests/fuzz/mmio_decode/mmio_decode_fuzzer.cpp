// libFuzzer target for MMIO emulation's guest-controlled inputs: the instruction bytes at the
// guest's RIP (decode_mmio_instruction, complete_load, store_value) and the guest's page
// tables (translate_linear, fetch_instruction). Everything here is written by the guest, so
// neither may read past what it was given, loop, or return something out of range.
//
// Input: [0] mode and flags, [1] instruction byte count (mod 21), the instruction bytes, then
// a paging header (linear address 8, CR3 8, control flags 1, MAXPHYADDR 1) and the rest as
// guest RAM at guest-physical 0 (or, with the alias flag, all of the low 4 GiB aliased onto
// it, so random entries lead to deep walks).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "arch/x86/guest_paging.hpp"
#include "arch/x86/mmio_instruction.hpp"

namespace {

using namespace godwit::hv;
using namespace godwit::hv::x86;

void require(bool condition) {
    if (!condition)
        std::abort();
}

u64 mask_of(u32 size) {
    return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

bool valid_size(u32 size) {
    return size == 1 || size == 2 || size == 4 || size == 8;
}

void fuzz_decoder(const u8* data, u32 count, CpuMode mode) {
    // An exact-size heap copy, so a read past `count` is an ASan error.
    std::vector<u8> bytes(data, data + count);
    MmioInstruction out{};
    const DecodeStatus status = decode_mmio_instruction(bytes.data(), count, mode, out);
    require(status <= DecodeStatus::invalid);
    if (status != DecodeStatus::ok)
        return;

    require(out.length >= 1 && out.length <= 15 && out.length <= count);
    require(out.op <= MmioOp::store_immediate);
    require(valid_size(out.access_size) && valid_size(out.dest_size));
    require(out.dest_size >= out.access_size);
    require(out.reg < 16);
    require(!out.high_byte || (out.reg < 4 && out.access_size == 1));
    require(!(out.sign_extend && out.zero_extend));
    require((out.immediate & ~mask_of(out.access_size)) == 0);
    require(mode == CpuMode::long64 || out.access_size <= 4);

    // The decoder looks at exactly `length` bytes: the same with nothing after them, and one
    // byte fewer is truncated.
    std::vector<u8> exact(data, data + out.length);
    MmioInstruction again{};
    require(decode_mmio_instruction(exact.data(), out.length, mode, again) == DecodeStatus::ok);
    static_assert(sizeof(MmioInstruction) == 16, "no padding: compared with memcmp");
    require(std::memcmp(&again, &out, sizeof out) == 0);
    std::vector<u8> shorter(data, data + out.length - 1);
    require(decode_mmio_instruction(shorter.data(), out.length - 1, mode, again) ==
            DecodeStatus::truncated);

    u64 gprs[16];
    for (u32 i = 0; i < 16; ++i)
        gprs[i] = 0xA5A5A5A5A5A5A5A5ull ^ (u64{i} << 56);
    const u64 stored = store_value(out, gprs);
    require((stored & ~mask_of(out.access_size)) == 0);
    if (out.op == MmioOp::load) {
        u64 before[16];
        std::memcpy(before, gprs, sizeof gprs);
        complete_load(out, 0xFEDCBA9876543210ull, gprs);
        for (u32 i = 0; i < 16; ++i)
            require(i == out.reg || gprs[i] == before[i]);
    }
}

struct FuzzMemory {
    const u8* ram;
    u32 size;
    bool alias_low_4g;
    u32 reads = 0;
};

bool read_guest(void* context, u64 gpa, void* dst, u32 length) {
    auto* memory = static_cast<FuzzMemory*>(context);
    ++memory->reads;
    require(length >= 1 && length <= 15); // entries are 4/8 bytes, fetches at most 15
    if (memory->size == 0)
        return false;
    if (memory->alias_low_4g) {
        if (gpa >= (1ull << 32) || gpa + length > (1ull << 32))
            return false;
        auto* out = static_cast<u8*>(dst);
        for (u32 i = 0; i < length; ++i)
            out[i] = memory->ram[(gpa + i) % memory->size];
        return true;
    }
    if (gpa >= memory->size || length > memory->size - gpa)
        return false;
    std::memcpy(dst, memory->ram + gpa, length); // `length` bytes into the walker's buffer
    return true;
}

void fuzz_walker(const u8* data, std::size_t size) {
    constexpr std::size_t header = 18;
    if (size < header)
        return;
    u64 linear = 0, cr3 = 0;
    std::memcpy(&linear, data, 8);
    std::memcpy(&cr3, data + 8, 8);
    const u8 flags = data[16];
    PagingContext context{};
    context.cr0 = (flags & 1) ? (1ull << 31) | 1 : 1;
    context.cr3 = cr3;
    context.cr4 =
        ((flags & 2) ? 1u << 5 : 0) | ((flags & 4) ? 1u << 4 : 0) | ((flags & 8) ? 1u << 12 : 0);
    context.efer = ((flags & 16) ? (1u << 10) | (1u << 8) : 0) | ((flags & 32) ? 1u << 11 : 0);
    context.physical_address_bits = data[17];
    u64 pdptes[4] = {cr3, linear, cr3 ^ linear, ~cr3};
    if (flags & 64)
        context.pae_pdptes = pdptes;

    std::vector<u8> ram(data + header, data + size);
    FuzzMemory memory{ram.data(), static_cast<u32>(ram.size()), (flags & 128) != 0};
    GuestPhysicalReader reader{read_guest, &memory};

    const Translation t = translate_linear(context, linear, reader);
    require(t.status <= WalkStatus::non_canonical);
    require(memory.reads <= 4); // one entry per level, no loops
    if (t.status == WalkStatus::ok) {
        require((t.gpa & 0xFFF) == (linear & 0xFFF));
        require(t.gpa < (1ull << 52));
        if (paging_mode(context) == PagingMode::none)
            require(t.gpa == (linear & 0xFFFFFFFF));
    }

    memory.reads = 0;
    u8 bytes[15];
    const u32 fetched = fetch_instruction(context, linear, bytes, reader);
    require(fetched <= 15);
    require(memory.reads <= 2 * 5); // two pages: a walk and a read each
    require(t.status == WalkStatus::ok || fetched == 0);
    if (fetched > 0) {
        // Whatever the guest's code is, decoding it must stay within what was fetched.
        MmioInstruction out{};
        (void)decode_mmio_instruction(bytes, fetched, CpuMode::long64, out);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2)
        return 0;
    const CpuMode mode = static_cast<CpuMode>(data[0] & 3);
    u32 count = data[1] % 21;
    if (count > size - 2)
        count = static_cast<u32>(size - 2);
    fuzz_decoder(data + 2, count, mode);
    fuzz_walker(data + 2 + count, size - 2 - count);
    return 0;
}
