// libFuzzer target for the hypercall dispatcher: the root partition controls every register
// and every byte of its buffers (frame lists, vCPU state, run records). The input is the
// call (number, three arguments, CPL) followed by the caller's memory. A fake hypervisor
// checks that nothing reaches it unvalidated and that no copy leaves the caller's memory.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "arch/x86/xsave_area.hpp"
#include "hypercall/hypercall.hpp"

namespace {

using namespace godwit::hv;

constexpr u64 base = 0x10000; // the caller's memory starts here

class FuzzHost final : public hypercall::HypercallHost {
  public:
    std::vector<unsigned char> memory;
    std::vector<char> ring = std::vector<char>(512, 'x');

    bool caller_owns(u64 gpa, u64 length) const override {
        return length != 0 && gpa >= base && gpa + length >= gpa &&
               gpa + length <= base + memory.size();
    }
    void copy_to_caller(u64 gpa, const void* source, u64 length) override {
        if (!caller_owns(gpa, length))
            std::abort(); // a write outside the caller's memory
        std::memcpy(memory.data() + (gpa - base), source, length);
    }
    void copy_from_caller(u64 gpa, void* destination, u64 length) const override {
        if (!caller_owns(gpa, length))
            std::abort();
        std::memcpy(destination, memory.data() + (gpa - base), length);
    }
    void version(godwit_hc_version& out) const override { out.abi_version = GODWIT_HC_ABI_VERSION; }
    u32 cpu_count() const override { return 3; }
    void cpu(u32 index, godwit_hc_cpu& out) const override { out.index = index; }
    void memory_stats(godwit_hc_memory_stats& out) const override { out.total_bytes = 1; }
    void console(const char*& text, u64& size, u64& written) const override {
        text = ring.data();
        size = ring.size();
        written = 1500;
    }
    u64 partition_create(u64 ram, u32 vcpus, u32& id) override {
        if (ram == 0 || ram % page_size != 0 || vcpus == 0 || vcpus > GODWIT_MAX_VCPUS)
            std::abort(); // the dispatcher let a bad argument through
        id = 1;
        return GODWIT_HC_OK;
    }
    u64 partition_destroy(u32 id) override {
        if (id >= GODWIT_MAX_PARTITIONS)
            std::abort();
        return GODWIT_HC_OK;
    }
    u64 partition_map(u32 id, u64 gpa, const u64* frames, u32 count) override {
        if (id >= GODWIT_MAX_PARTITIONS || gpa % page_size != 0 || count == 0 ||
            count > GODWIT_MAX_MAP_FRAMES)
            std::abort();
        for (u32 i = 0; i < count; ++i) {
            if (frames[i] % page_size != 0 || !caller_owns(frames[i], page_size))
                std::abort(); // a frame the caller does not own would have been mapped
        }
        return GODWIT_HC_OK;
    }
    u64 vcpu_set_state(u32 id, u32 vcpu, const godwit_hc_vcpu_state&) override {
        return id < GODWIT_MAX_PARTITIONS && vcpu < GODWIT_MAX_VCPUS ? GODWIT_HC_OK
                                                                     : (std::abort(), 0);
    }
    u64 vcpu_run(u32 id, u32 vcpu, godwit_hc_vcpu_run& run) override {
        if (id >= GODWIT_MAX_PARTITIONS || vcpu >= GODWIT_MAX_VCPUS ||
            (run.flags & ~(GODWIT_RUN_COMPLETE_READ | GODWIT_RUN_NO_ENTRY)) != 0 ||
            run.reserved0 != 0)
            std::abort();
        run.exit_reason = GODWIT_EXIT_HLT;
        return GODWIT_HC_OK;
    }
    u64 partition_irq(u32 id, u32 pin, bool, u32& wake) override {
        if (id >= GODWIT_MAX_PARTITIONS || pin >= GODWIT_IOAPIC_PINS)
            std::abort();
        wake = 0;
        return GODWIT_HC_OK;
    }
    u64 dirty_log(u32 id, u32 op) override {
        if (id >= GODWIT_MAX_PARTITIONS ||
            (op != GODWIT_DIRTY_DISABLE && op != GODWIT_DIRTY_ENABLE &&
             op != GODWIT_DIRTY_ENABLE_WRITE_PROTECT))
            std::abort();
        return GODWIT_HC_OK;
    }
    u64 dirty_fetch(u32 id, u64 first, u32 pages, u64 bits_gpa) override {
        if (id >= GODWIT_MAX_PARTITIONS || pages == 0 || pages % 64 != 0 ||
            pages > GODWIT_DIRTY_FETCH_MAX_PAGES || first % 64 != 0 ||
            !caller_owns(bits_gpa, pages / 8))
            std::abort();
        return GODWIT_HC_OK;
    }
    u64 vcpu_get_extra(u32 id, u32 vcpu, godwit_hc_vcpu_extra&) override {
        return id < GODWIT_MAX_PARTITIONS && vcpu < GODWIT_MAX_VCPUS ? GODWIT_HC_OK
                                                                     : (std::abort(), 0);
    }
    u64 vcpu_set_extra(u32 id, u32 vcpu, const godwit_hc_vcpu_extra& x) override {
        if (id >= GODWIT_MAX_PARTITIONS || vcpu >= GODWIT_MAX_VCPUS ||
            x.format != GODWIT_VCPU_EXTRA_FORMAT || x.lapic_bytes > GODWIT_STATE_BLOB_BYTES)
            std::abort();
        return GODWIT_HC_OK;
    }
    u64 irqchip_get(u32 id, godwit_hc_irqchip&) override {
        return id < GODWIT_MAX_PARTITIONS ? GODWIT_HC_OK : (std::abort(), 0);
    }
    u64 irqchip_set(u32 id, const godwit_hc_irqchip& c) override {
        if (id >= GODWIT_MAX_PARTITIONS || c.ioapic_bytes > GODWIT_STATE_BLOB_BYTES)
            std::abort();
        return GODWIT_HC_OK;
    }
    // 1.4: what reaches the host passed the dispatcher's checks; the state checks of a CPU
    // with x87, SSE, AVX and AVX-512 then decide (XRSTOR must never see what they refuse).
    u64 vcpu_get_fpu(u32 id, u32 vcpu, godwit_hc_vcpu_fpu& f) override {
        if (id >= GODWIT_MAX_PARTITIONS || vcpu >= GODWIT_MAX_VCPUS)
            std::abort();
        f.format = GODWIT_FPU_FORMAT;
        return GODWIT_HC_OK;
    }
    u64 vcpu_set_fpu(u32 id, u32 vcpu, const godwit_hc_vcpu_fpu& f) override {
        if (id >= GODWIT_MAX_PARTITIONS || vcpu >= GODWIT_MAX_VCPUS ||
            f.format != GODWIT_FPU_FORMAT || f.area_bytes > GODWIT_FPU_AREA_BYTES)
            std::abort();
        static const x86::XsaveLayout layout = [] {
            u32 offsets[19] = {0, 0, 576, 960, 1024, 1088, 1152, 1664, 0, 2688};
            u32 sizes[19] = {0, 0, 256, 64, 64, 64, 512, 1024, 0, 8};
            return x86::make_xsave_layout(true, 0x2FF, offsets, sizes, 0xFFFF);
        }();
        u64 s = x86::check_fpu_state(f, layout);
        if (s != GODWIT_HC_OK && s != GODWIT_HC_BAD_ARGUMENT)
            std::abort();
        u32 mxcsr = 0;
        std::memcpy(&mxcsr, f.xsave + 24, 4);
        u64 bv = 0;
        std::memcpy(&bv, f.xsave + 512, 8);
        if (s == GODWIT_HC_OK && ((mxcsr & ~0xFFFFu) != 0 || (bv & ~layout.features) != 0 ||
                                  !x86::xcr0_valid(f.xcr0, layout.features)))
            std::abort(); // a state XRSTOR would fault on
        return s;
    }
    u64 vcpu_get_state(u32 id, u32 vcpu, godwit_hc_vcpu_state&) override {
        return id < GODWIT_MAX_PARTITIONS && vcpu < GODWIT_MAX_VCPUS ? GODWIT_HC_OK
                                                                     : (std::abort(), 0);
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    constexpr std::size_t header = 4 * 8 + 1;
    if (size < header)
        return 0;
    u64 regs[4];
    std::memcpy(regs, data, sizeof regs);
    hypercall::Call call{regs[0] % 20, regs[1], regs[2], regs[3], static_cast<u8>(data[32] % 4),
                         true};
    // Arguments that point into the caller's memory often enough to get past the checks.
    if (data[32] & 0x10)
        call.arg0 = base + (call.arg0 % 0x2000);
    if (data[32] & 0x20)
        call.arg1 = base + (call.arg1 % 0x2000);
    if (data[32] & 0x40)
        call.arg2 %= 0x1200;
    FuzzHost host;
    host.memory.assign(data + header, data + size);
    hypercall::Result r = hypercall::dispatch(call, host);
    if (r.status > GODWIT_HC_BUSY)
        std::abort(); // not a documented status
    return 0;
}
