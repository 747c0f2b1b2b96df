// Hypercall argument validation over a fake hypervisor: every bad argument gets an error
// code and nothing is written outside the caller's buffer.
#include "hypercall/hypercall.hpp"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace godwit::hv::hypercall {
namespace {

class FakeHost final : public HypercallHost {
  public:
    // Caller memory: [0x1000, 0x1000 + memory.size()).
    std::vector<unsigned char> memory = std::vector<unsigned char>(0x30000, 0xEE);
    std::string ring = std::string(256, '.');
    u64 written = 0;
    u32 cpus = 3;

    bool caller_owns(u64 gpa, u64 length) const override {
        return length != 0 && gpa >= 0x1000 && gpa + length >= gpa &&
               gpa + length <= 0x1000 + memory.size();
    }
    void copy_to_caller(u64 gpa, const void* source, u64 length) override {
        ASSERT_TRUE(caller_owns(gpa, length));
        std::memcpy(memory.data() + (gpa - 0x1000), source, length);
    }
    void version(godwit_hc_version& out) const override {
        out.abi_version = GODWIT_HC_ABI_VERSION;
        out.cpu_count = cpus;
        std::strcpy(out.build, "test");
    }
    u32 cpu_count() const override { return cpus; }
    void cpu(u32 index, godwit_hc_cpu& out) const override {
        out.index = index;
        out.apic_id = index * 2;
        out.flags = 7;
    }
    void memory_stats(godwit_hc_memory_stats& out) const override { out.total_bytes = 512 << 20; }
    void console(const char*& text, u64& size, u64& total) const override {
        text = ring.data();
        size = ring.size();
        total = written;
    }
    void copy_from_caller(u64 gpa, void* destination, u64 length) const override {
        ASSERT_TRUE(caller_owns(gpa, length));
        std::memcpy(destination, memory.data() + (gpa - 0x1000), length);
    }
    // Partition calls record what reached the hypervisor proper.
    std::vector<u64> mapped;
    int calls = 0;
    u64 partition_create(u64, u32, u32& id) override {
        ++calls;
        id = 3;
        return GODWIT_HC_OK;
    }
    u64 partition_destroy(u32) override { return ++calls, GODWIT_HC_OK; }
    u64 partition_map(u32, u64, const u64* frames, u32 count) override {
        ++calls;
        mapped.assign(frames, frames + count);
        return GODWIT_HC_OK;
    }
    u64 vcpu_set_state(u32, u32, const godwit_hc_vcpu_state&) override {
        return ++calls, GODWIT_HC_OK;
    }
    u64 vcpu_get_state(u32, u32, godwit_hc_vcpu_state& state) override {
        ++calls;
        state.rip = 0x100000;
        return GODWIT_HC_OK;
    }
    u64 partition_irq(u32 id, u32 pin, bool level, u32& wake) override {
        ++calls;
        irq_seen = {id, pin, level ? 1u : 0u};
        wake = 0x2;
        return GODWIT_HC_OK;
    }
    std::vector<u32> irq_seen;
    std::vector<u64> dirty_seen;
    u64 dirty_log(u32 id, u32 op) override {
        ++calls;
        dirty_seen = {id, op};
        return GODWIT_HC_OK;
    }
    u64 dirty_fetch(u32 id, u64 first, u32 pages, u64 bits_gpa) override {
        ++calls;
        dirty_seen = {id, first, pages, bits_gpa};
        return GODWIT_HC_OK;
    }
    godwit_hc_vcpu_extra extra_seen{};
    u64 vcpu_get_extra(u32, u32, godwit_hc_vcpu_extra& x) override {
        ++calls;
        x.format = GODWIT_VCPU_EXTRA_FORMAT;
        x.guest_tsc = 1234;
        return GODWIT_HC_OK;
    }
    u64 vcpu_set_extra(u32, u32, const godwit_hc_vcpu_extra& x) override {
        ++calls;
        extra_seen = x;
        return GODWIT_HC_OK;
    }
    godwit_hc_vcpu_fpu fpu_seen{};
    u64 vcpu_get_fpu(u32, u32, godwit_hc_vcpu_fpu& f) override {
        ++calls;
        f.format = GODWIT_FPU_FORMAT;
        f.xcr0 = 7;
        return GODWIT_HC_OK;
    }
    u64 vcpu_set_fpu(u32, u32, const godwit_hc_vcpu_fpu& f) override {
        ++calls;
        fpu_seen = f;
        return GODWIT_HC_OK;
    }
    u64 irqchip_get(u32, godwit_hc_irqchip& c) override {
        ++calls;
        c.format = GODWIT_IRQCHIP_FORMAT;
        return GODWIT_HC_OK;
    }
    u64 irqchip_set(u32, const godwit_hc_irqchip&) override { return ++calls, GODWIT_HC_OK; }
    u64 vcpu_run(u32, u32, godwit_hc_vcpu_run& run) override {
        ++calls;
        run.exit_reason = GODWIT_EXIT_HLT;
        return GODWIT_HC_OK;
    }
    void log(const std::string& s) { // what the hypervisor console would do
        for (char c : s)
            ring[written++ % ring.size()] = c;
    }
    unsigned char* at(u64 gpa) { return memory.data() + (gpa - 0x1000); }
};

Result call(FakeHost& h, u64 number, u64 a0, u64 a1, u64 a2 = 0, u8 cpl = 0, bool root = true) {
    return dispatch(Call{number, a0, a1, a2, cpl, root}, h);
}

TEST(Hypercall, Version) {
    FakeHost h;
    Result r = call(h, GODWIT_HC_VERSION, 0x2000, sizeof(godwit_hc_version));
    ASSERT_EQ(r.status, GODWIT_HC_OK);
    godwit_hc_version v{};
    std::memcpy(&v, h.at(0x2000), sizeof v);
    EXPECT_EQ(v.abi_version, GODWIT_HC_ABI_VERSION);
    EXPECT_STREQ(v.build, "test");
    EXPECT_EQ(*h.at(0x2000 + sizeof v), 0xEE); // nothing past the struct
}

TEST(Hypercall, RefusesBadCallers) {
    FakeHost h;
    EXPECT_EQ(call(h, GODWIT_HC_VERSION, 0x2000, 72, 0, 3).status, GODWIT_HC_DENIED);
    EXPECT_EQ(call(h, GODWIT_HC_VERSION, 0x2000, 72, 0, 0, false).status, GODWIT_HC_DENIED);
    EXPECT_EQ(call(h, 0, 0, 0).status, GODWIT_HC_UNKNOWN_CALL);
    EXPECT_EQ(call(h, 999, 0x2000, 72).status, GODWIT_HC_UNKNOWN_CALL);
    EXPECT_EQ(*h.at(0x2000), 0xEE);
}

TEST(Hypercall, RefusesBadBuffers) {
    FakeHost h;
    for (u64 n : {u64{GODWIT_HC_VERSION}, u64{GODWIT_HC_MEMORY_STATS}, u64{GODWIT_HC_CPU_LIST},
                  u64{GODWIT_HC_CONSOLE_READ}}) {
        SCOPED_TRACE(n);
        EXPECT_EQ(call(h, n, 0x0, 4096).status, GODWIT_HC_BAD_ADDRESS);         // not its memory
        EXPECT_EQ(call(h, n, 0x30F00, 4096).status, GODWIT_HC_BAD_ADDRESS);     // runs off the end
        EXPECT_EQ(call(h, n, ~0ull - 100, 4096).status, GODWIT_HC_BAD_ADDRESS); // wraps
        EXPECT_EQ(call(h, n, 0x2000, 8).status, GODWIT_HC_BAD_LENGTH);          // too small
        EXPECT_EQ(call(h, n, 0x2000, 1ull << 40).status, GODWIT_HC_BAD_LENGTH); // too big
    }
    EXPECT_EQ(call(h, GODWIT_HC_VERSION, 0x2000, 72, 1).status, GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_CPU_LIST, 0x2000, 72, 1).status, GODWIT_HC_BAD_ARGUMENT);
    for (u64 i = 0; i < h.memory.size(); ++i)
        ASSERT_EQ(h.memory[i], 0xEE) << i;
}

TEST(Hypercall, CpuListTruncatesAndReportsTheCount) {
    FakeHost h;
    Result r = call(h, GODWIT_HC_CPU_LIST, 0x2000, 2 * sizeof(godwit_hc_cpu) + 5);
    ASSERT_EQ(r.status, GODWIT_HC_OK);
    EXPECT_EQ(r.value, 3u);
    godwit_hc_cpu second{};
    std::memcpy(&second, h.at(0x2000 + sizeof(godwit_hc_cpu)), sizeof second);
    EXPECT_EQ(second.apic_id, 2u);
    EXPECT_EQ(*h.at(0x2000 + 2 * sizeof(godwit_hc_cpu)), 0xEE);
}

TEST(Hypercall, ConsoleReadWrapsAndReportsLoss) {
    FakeHost h;
    h.log("hello ");
    Result r = call(h, GODWIT_HC_CONSOLE_READ, 0x2000, 16 + 64);
    ASSERT_EQ(r.status, GODWIT_HC_OK);
    EXPECT_EQ(r.value, 6u);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(h.at(0x2010)), 6), "hello ");
    // Overrun the 256-byte ring: a read from 0 starts at the oldest byte held.
    std::string line;
    for (int i = 0; i < 40; ++i)
        line += "line" + std::to_string(i) + "\n";
    h.log(line);
    r = call(h, GODWIT_HC_CONSOLE_READ, 0x3000, 16 + 1024, 0);
    ASSERT_EQ(r.status, GODWIT_HC_OK);
    godwit_hc_console_chunk chunk{};
    std::memcpy(&chunk, h.at(0x3000), sizeof chunk);
    EXPECT_EQ(chunk.end_of_log, h.written);
    EXPECT_EQ(chunk.start, h.written - 256);
    EXPECT_EQ(r.value, 256u);
    std::string all = "hello " + line;
    EXPECT_EQ(std::string(reinterpret_cast<char*>(h.at(0x3010)), 256),
              all.substr(all.size() - 256));
    // A position beyond the end is refused; the end itself reads nothing.
    EXPECT_EQ(call(h, GODWIT_HC_CONSOLE_READ, 0x3000, 64, h.written + 1).status,
              GODWIT_HC_BAD_ARGUMENT);
    r = call(h, GODWIT_HC_CONSOLE_READ, 0x3000, 64, h.written);
    EXPECT_EQ(r.status, GODWIT_HC_OK);
    EXPECT_EQ(r.value, 0u);
}

TEST(Hypercall, PartitionArgumentsAreValidatedBeforeTheHypervisorActs) {
    FakeHost h;
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_CREATE, 0, 1).status, GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_CREATE, 4097, 1).status, GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_CREATE, 8ull << 30, 1).status, GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_CREATE, 1 << 20, 0).status, GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_CREATE, 1 << 20, 99).status, GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_DESTROY, 16, 0).status, GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_RUN, 1 | (9ull << 32), 0x2000, 72).status,
              GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_RUN, 1, 0x2000, 48).status, GODWIT_HC_BAD_LENGTH);
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_IRQ, 16, 0, 1).status, GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_IRQ, 1, 24, 1).status, GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_IRQ, 1, 4, 2).status, GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_SET_STATE, 1, 0x0, sizeof(godwit_hc_vcpu_state)).status,
              GODWIT_HC_BAD_ADDRESS);
    EXPECT_EQ(h.calls, 0);
    Result r = call(h, GODWIT_HC_PARTITION_CREATE, 1 << 20, 2);
    EXPECT_EQ(r.status, GODWIT_HC_OK);
    EXPECT_EQ(r.value, 3u);
    // A run with unknown flags is refused; a good one writes the exit back.
    godwit_hc_vcpu_run run{};
    run.flags = 0x80;
    std::memcpy(h.at(0x2000), &run, sizeof run);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_RUN, 3, 0x2000, sizeof run).status, GODWIT_HC_BAD_ARGUMENT);
    run.flags = 0;
    run.reserved0 = 1;
    std::memcpy(h.at(0x2000), &run, sizeof run);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_RUN, 3, 0x2000, sizeof run).status, GODWIT_HC_BAD_ARGUMENT);
    run.reserved0 = 0;
    std::memcpy(h.at(0x2000), &run, sizeof run);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_RUN, 3, 0x2000, sizeof run).status, GODWIT_HC_OK);
    std::memcpy(&run, h.at(0x2000), sizeof run);
    EXPECT_EQ(run.exit_reason, u32{GODWIT_EXIT_HLT});
    // An IRQ line reaches the partition; the vCPUs to wake come back in RDX.
    r = call(h, GODWIT_HC_PARTITION_IRQ, 3, 23, 1);
    EXPECT_EQ(r.status, GODWIT_HC_OK);
    EXPECT_EQ(r.value, 0x2u);
    EXPECT_EQ(h.irq_seen, (std::vector<u32>{3, 23, 1}));
    // Get state: validated like set, and the state comes back whole.
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_GET_STATE, 3, 0x2000, 100).status, GODWIT_HC_BAD_LENGTH);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_GET_STATE, 3, 0x30F00, sizeof(godwit_hc_vcpu_state)).status,
              GODWIT_HC_BAD_ADDRESS);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_GET_STATE, 3, 0x2000, sizeof(godwit_hc_vcpu_state)).status,
              GODWIT_HC_OK);
    godwit_hc_vcpu_state state{};
    std::memcpy(&state, h.at(0x2000), sizeof state);
    EXPECT_EQ(state.rip, 0x100000u);
}

TEST(Hypercall, MapOnlyTheCallersOwnPages) {
    FakeHost h;
    auto put = [&](u64 gpa, u32 count, std::vector<u64> frames, u32 reserved = 0) {
        godwit_hc_map_frames head{gpa, count, reserved};
        std::memcpy(h.at(0x4000), &head, sizeof head);
        std::memcpy(h.at(0x4000 + sizeof head), frames.data(), frames.size() * sizeof(u64));
        return sizeof head + frames.size() * sizeof(u64);
    };
    u64 len = put(0, 2, {0x5000, 0x6000});
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_MAP, 1, 0x4000, len).status, GODWIT_HC_OK);
    EXPECT_EQ(h.mapped, (std::vector<u64>{0x5000, 0x6000}));
    len = put(0, 2, {0x5000, 0x900000}); // not the caller's memory (hypervisor, MMIO, ...)
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_MAP, 1, 0x4000, len).status, GODWIT_HC_BAD_ADDRESS);
    len = put(0, 1, {0x5008}); // not page-aligned
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_MAP, 1, 0x4000, len).status, GODWIT_HC_BAD_ADDRESS);
    len = put(0x123, 1, {0x5000}); // guest address not page-aligned
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_MAP, 1, 0x4000, len).status, GODWIT_HC_BAD_ARGUMENT);
    len = put(0, 3, {0x5000}); // count says more frames than the buffer holds
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_MAP, 1, 0x4000, len).status, GODWIT_HC_BAD_LENGTH);
    len = put(0, 1, {0x5000}, 7); // reserved field
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_MAP, 1, 0x4000, len).status, GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_PARTITION_MAP, 99, 0x4000, len).status, GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(h.calls, 1);
}

} // namespace
TEST(Hypercall, SaveRestoreCallsAreValidatedBeforeTheHypervisorActs) {
    FakeHost h;
    // Dirty log: known ops only, no stray argument, a fetch header that is sane and a
    // bitmap that lies in the caller's memory.
    EXPECT_EQ(call(h, GODWIT_HC_DIRTY_LOG, 16, GODWIT_DIRTY_ENABLE).status, GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_DIRTY_LOG, 1, 7).status, GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_DIRTY_LOG, 1, GODWIT_DIRTY_ENABLE, 5).status,
              GODWIT_HC_BAD_ARGUMENT);
    godwit_hc_dirty_fetch head{};
    head.first_page = 64;
    head.pages = 100; // not a multiple of 64
    std::memcpy(h.at(0x2000), &head, sizeof head);
    EXPECT_EQ(call(h, GODWIT_HC_DIRTY_LOG, 1, GODWIT_DIRTY_FETCH, 0x2000).status,
              GODWIT_HC_BAD_ARGUMENT);
    head.pages = 64; // the header ends the caller's memory: no room for the bits
    std::memcpy(h.at(0x30FF0), &head, sizeof head);
    EXPECT_EQ(call(h, GODWIT_HC_DIRTY_LOG, 1, GODWIT_DIRTY_FETCH, 0x30FF0).status,
              GODWIT_HC_BAD_ADDRESS);
    EXPECT_EQ(h.calls, 0);
    EXPECT_EQ(call(h, GODWIT_HC_DIRTY_LOG, 1, GODWIT_DIRTY_ENABLE_WRITE_PROTECT, 5).status,
              GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(h.calls, 0);
    EXPECT_EQ(call(h, GODWIT_HC_DIRTY_LOG, 2, GODWIT_DIRTY_ENABLE_WRITE_PROTECT).status,
              GODWIT_HC_OK);
    EXPECT_EQ(h.dirty_seen, (std::vector<u64>{2, GODWIT_DIRTY_ENABLE_WRITE_PROTECT}));
    EXPECT_EQ(call(h, GODWIT_HC_DIRTY_LOG, 2, GODWIT_DIRTY_ENABLE).status, GODWIT_HC_OK);
    EXPECT_EQ(h.dirty_seen, (std::vector<u64>{2, GODWIT_DIRTY_ENABLE}));
    head.pages = 128;
    std::memcpy(h.at(0x2000), &head, sizeof head);
    EXPECT_EQ(call(h, GODWIT_HC_DIRTY_LOG, 2, GODWIT_DIRTY_FETCH, 0x2000).status, GODWIT_HC_OK);
    EXPECT_EQ(h.dirty_seen, (std::vector<u64>{2, 64, 128, 0x2000 + sizeof head}));

    // Extra vCPU state: exact size, known format, a LAPIC blob that fits.
    godwit_hc_vcpu_extra x{};
    x.format = 9;
    std::memcpy(h.at(0x2000), &x, sizeof x);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_SET_EXTRA, 1, 0x2000, sizeof x).status,
              GODWIT_HC_BAD_ARGUMENT);
    x.format = GODWIT_VCPU_EXTRA_FORMAT;
    x.lapic_bytes = GODWIT_STATE_BLOB_BYTES + 1;
    std::memcpy(h.at(0x2000), &x, sizeof x);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_SET_EXTRA, 1, 0x2000, sizeof x).status,
              GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_SET_EXTRA, 1, 0x2000, sizeof x - 1).status,
              GODWIT_HC_BAD_LENGTH);
    x.lapic_bytes = 200;
    x.mp_state = GODWIT_MP_HALTED;
    std::memcpy(h.at(0x2000), &x, sizeof x);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_SET_EXTRA, 1 | (2ull << 32), 0x2000, sizeof x).status,
              GODWIT_HC_OK);
    EXPECT_EQ(h.extra_seen.mp_state, u32{GODWIT_MP_HALTED});
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_GET_EXTRA, 1, 0x2000, sizeof x).status, GODWIT_HC_OK);
    std::memcpy(&x, h.at(0x2000), sizeof x);
    EXPECT_EQ(x.guest_tsc, 1234u);

    // FPU state (1.4): exact size, known format, reserved zero, area_bytes in range.
    auto fpu = std::make_unique<godwit_hc_vcpu_fpu>();
    std::memcpy(h.at(0x2000), fpu.get(), sizeof *fpu);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_SET_FPU, 1, 0x2000, sizeof *fpu).status,
              GODWIT_HC_BAD_ARGUMENT);
    fpu->format = GODWIT_FPU_FORMAT;
    fpu->area_bytes = GODWIT_FPU_AREA_BYTES + 1;
    std::memcpy(h.at(0x2000), fpu.get(), sizeof *fpu);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_SET_FPU, 1, 0x2000, sizeof *fpu).status,
              GODWIT_HC_BAD_ARGUMENT);
    fpu->area_bytes = 575;
    std::memcpy(h.at(0x2000), fpu.get(), sizeof *fpu);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_SET_FPU, 1, 0x2000, sizeof *fpu).status,
              GODWIT_HC_BAD_ARGUMENT);
    fpu->area_bytes = 832;
    fpu->reserved[4] = 1;
    std::memcpy(h.at(0x2000), fpu.get(), sizeof *fpu);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_SET_FPU, 1, 0x2000, sizeof *fpu).status,
              GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_SET_FPU, 1, 0x2000, sizeof *fpu - 1).status,
              GODWIT_HC_BAD_LENGTH);
    fpu->reserved[4] = 0;
    fpu->xcr0 = 7;
    std::memcpy(h.at(0x2000), fpu.get(), sizeof *fpu);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_SET_FPU, 1 | (3ull << 32), 0x2000, sizeof *fpu).status,
              GODWIT_HC_OK);
    EXPECT_EQ(h.fpu_seen.xcr0, 7u);
    EXPECT_EQ(call(h, GODWIT_HC_VCPU_GET_FPU, 1, 0x2000, sizeof *fpu).status, GODWIT_HC_OK);
    std::memcpy(fpu.get(), h.at(0x2000), sizeof *fpu);
    EXPECT_EQ(fpu->format, GODWIT_FPU_FORMAT);

    // IOAPIC state: a partition call (no vCPU in arg0), exact size, known format.
    godwit_hc_irqchip chip{};
    std::memcpy(h.at(0x2000), &chip, sizeof chip);
    EXPECT_EQ(call(h, GODWIT_HC_IRQCHIP_SET, 1, 0x2000, sizeof chip).status,
              GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_IRQCHIP_GET, 1 | (1ull << 32), 0x2000, sizeof chip).status,
              GODWIT_HC_BAD_ARGUMENT);
    EXPECT_EQ(call(h, GODWIT_HC_IRQCHIP_GET, 1, 0x2000, sizeof chip).status, GODWIT_HC_OK);
}

} // namespace godwit::hv::hypercall
