// fuzz_vapic: two virtual LAPICs and an IOAPIC wired like a partition (hypervisor/partition/
// partition_interrupts.cpp) driven by an operation stream: xAPIC MMIO and x2APIC MSR
// accesses, device lines, EOIs, injections, time steps, and restores of arbitrary saved-state
// bytes. Checks: no crash or UB (ASan/UBSan), vectors in range, and every state a restore
// accepts or the traffic reaches saves and restores to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "partition/vioapic.hpp"
#include "partition/vlapic.hpp"

using namespace godwit::hv;

namespace {

constexpr unsigned cpus = 2;

struct Machine final : ApicBus {
    VirtualLapic lapic[cpus];
    VirtualIoapic ioapic;
    int depth = 0;
    void deliver(const ApicMessage& m) override {
        for (VirtualLapic& l : lapic) {
            if (l.matches(m))
                l.accept(m);
        }
    }
    void eoi_level(u8 vector) override {
        if (++depth < 4) // an EOI may redeliver, which may not recurse without bound
            ioapic.eoi(vector, *this);
        --depth;
    }
};

struct Input {
    const std::uint8_t* data;
    std::size_t size;
    template <typename T>
    T take() {
        T value{};
        std::size_t n = size < sizeof(T) ? size : sizeof(T);
        std::memcpy(&value, data, n);
        data += n;
        size -= n;
        return value;
    }
};

template <typename State, typename Object, typename... Now>
void check_round_trip(Object& object, Now... now) {
    State saved{};
    object.save(saved, now...);
    Object copy = object;
    if (!copy.restore(saved, now...))
        std::abort(); // a state the model itself produced must be accepted
    State again{};
    copy.save(again, now...);
    if (std::memcmp(&saved, &again, sizeof saved) != 0)
        std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Machine m;
    for (unsigned i = 0; i < cpus; ++i)
        m.lapic[i].reset(i, i == 0, 1 + (data != nullptr && size > 0 ? data[0] % 4 : 0));
    m.ioapic.reset(cpus);
    Input in{data, size};
    u64 now = 1000;
    while (in.size > 0) {
        u8 op = in.take<u8>();
        VirtualLapic& l = m.lapic[op & 1];
        switch ((op >> 1) % 10) {
        case 0:
            l.mmio_write(in.take<u16>() & 0xFFF, in.take<u32>(), now, m);
            break;
        case 1:
            (void)l.mmio_read(in.take<u16>() & 0xFFF, now);
            break;
        case 2: {
            u32 msr = 0x800 + in.take<u8>();
            if (in.take<u8>() & 1)
                msr = in.take<u8>() & 1 ? VirtualLapic::msr_apic_base
                                        : VirtualLapic::msr_tsc_deadline;
            (void)l.msr_write(msr, in.take<u64>(), now, m);
            break;
        }
        case 3: {
            u64 value = 0;
            (void)l.msr_read(0x800 + in.take<u8>(), value, now);
            break;
        }
        case 4: {
            int vector = l.pending_vector(now);
            if (vector < -1 || vector > 255)
                std::abort();
            if (vector >= 0)
                l.acknowledge(static_cast<u8>(vector));
            break;
        }
        case 5:
            m.ioapic.set_irq(in.take<u8>() % VirtualIoapic::pin_count, in.take<u8>() & 1, m);
            break;
        case 6:
            if (in.take<u8>() & 1)
                m.ioapic.mmio_write(in.take<u8>() & 0x1F, in.take<u32>(), m);
            else
                (void)m.ioapic.mmio_read(in.take<u8>() & 0x1F);
            break;
        case 7:
            now += in.take<u32>();
            break;
        case 8: { // a saved LAPIC state from outside
            VirtualLapic::State s = in.take<VirtualLapic::State>();
            if (in.take<u8>() & 1) { // often make the header right, to reach the checks past it
                s.format = VirtualLapic::state_format;
                s.size = sizeof s;
                s.apic_id = l.apic_id();
            }
            VirtualLapic before = l;
            if (!l.restore(s, now)) {
                VirtualLapic::State a{}, b{};
                before.save(a, now);
                l.save(b, now);
                if (std::memcmp(&a, &b, sizeof a) != 0)
                    std::abort(); // a refused state changed the APIC
            }
            break;
        }
        case 9: { // a saved IOAPIC state from outside
            VirtualIoapic::State s = in.take<VirtualIoapic::State>();
            if (in.take<u8>() & 1) {
                s.format = VirtualIoapic::state_format;
                s.size = sizeof s;
            }
            (void)m.ioapic.restore(s);
            break;
        }
        }
        u8 take_vector = 0;
        (void)l.take_sipi(take_vector);
    }
    for (VirtualLapic& l : m.lapic)
        check_round_trip<VirtualLapic::State>(l, now);
    check_round_trip<VirtualIoapic::State>(m.ioapic);
    return 0;
}
