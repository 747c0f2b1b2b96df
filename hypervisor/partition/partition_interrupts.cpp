// Interrupt routing inside a guest partition: IPIs from a vCPU's LAPIC and IOAPIC
// redirection entries reach the LAPICs they address; level-triggered EOIs reach the IOAPIC.
// Every function runs with Partition::irq_lock held.
#include "partition/partition.hpp"

namespace godwit::hv::partitions {
namespace {

class PartitionBus final : public ApicBus {
  public:
    PartitionBus(Partition& p, u32& wake) : p_(p), wake_(wake) {}
    void deliver(const ApicMessage& m) override { partitions::deliver(p_, m, wake_); }
    void eoi_level(u8 vector) override { p_.ioapic.eoi(vector, *this); }

  private:
    Partition& p_;
    u32& wake_;
};

} // namespace

void deliver(Partition& p, const ApicMessage& m, u32& wake) {
    for (u32 n = 0; n < p.vcpu_count; ++n) {
        Vcpu& target = p.vcpus[n];
        if (!target.lapic.matches(m))
            continue;
        target.lapic.accept(m);
        wake |= 1u << n;
        // Lowest priority goes to one APIC: the first that matches (docs/virtual-interrupts.md).
        if (m.mode == DeliveryMode::lowest_priority)
            break;
    }
}

void ioapic_eoi(Partition& p, u8 vector, u32& wake) {
    PartitionBus bus(p, wake);
    p.ioapic.eoi(vector, bus);
}

void ioapic_write(Partition& p, u32 offset, u32 value, u32& wake) {
    PartitionBus bus(p, wake);
    p.ioapic.mmio_write(offset, value, bus);
}

void lapic_mmio_write(Partition& p, Vcpu& v, u32 offset, u32 value, u32& wake) {
    PartitionBus bus(p, wake);
    v.lapic.mmio_write(offset, value, guest_tsc(v), bus);
}

bool lapic_msr_write(Partition& p, Vcpu& v, u32 msr, u64 value, u32& wake) {
    PartitionBus bus(p, wake);
    return v.lapic.msr_write(msr, value, guest_tsc(v), bus);
}

void set_irq(Partition& p, u32 pin, bool level, u32& wake) {
    PartitionBus bus(p, wake);
    p.ioapic.set_irq(pin, level, bus);
}

} // namespace godwit::hv::partitions
