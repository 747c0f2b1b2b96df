#include "partition/vioapic.hpp"

namespace godwit::hv {
namespace {

// Register indices behind IOWIN (82093AA datasheet 3.2).
constexpr u32 index_id = 0x00;
constexpr u32 index_version = 0x01;
constexpr u32 index_arbitration = 0x02;
constexpr u32 index_redirection = 0x10; // 0x10 + 2n: low half of pin n, +1: high half

constexpr u32 id_writable = 0x0F000000; // 4-bit IOAPIC id in bits 27:24

// Redirection entry bits (82093AA 3.2.4).
constexpr u64 entry_vector = 0xFF;
constexpr u64 entry_logical = 1ull << 11;
constexpr u64 entry_remote_irr = 1ull << 14;
constexpr u64 entry_level = 1ull << 15;
constexpr u64 entry_masked = 1ull << 16;

u32 delivery_mode(u64 entry) {
    return static_cast<u32>(entry >> 8) & 7;
}
bool counts_remote_irr(u64 entry) {
    // Only fixed and lowest-priority interrupts are EOIed by the APIC, so only they can
    // hold remote IRR; the datasheet requires edge mode for SMI, NMI, INIT and ExtINT.
    const u32 mode = delivery_mode(entry);
    return (entry & entry_level) != 0 && (mode == static_cast<u32>(DeliveryMode::fixed) ||
                                          mode == static_cast<u32>(DeliveryMode::lowest_priority));
}

} // namespace

void VirtualIoapic::reset(u32 id) {
    id_ = (id << 24) & id_writable;
    ioregsel_ = 0;
    lines_ = 0;
    for (u64& entry : redirection_)
        entry = entry_masked;
}

u32 VirtualIoapic::mmio_read(u32 offset) const {
    if (offset == ioregsel_offset)
        return ioregsel_;
    if (offset != iowin_offset)
        return 0;
    switch (ioregsel_) {
    case index_id:
        return id_;
    case index_version:
        return version_value;
    case index_arbitration:
        return id_; // the arbitration id is loaded from the IOAPIC id
    default:
        break;
    }
    if (ioregsel_ < index_redirection || ioregsel_ >= index_redirection + 2 * pin_count)
        return 0;
    const u64 entry = redirection_[(ioregsel_ - index_redirection) / 2];
    return (ioregsel_ & 1) ? static_cast<u32>(entry >> 32) : static_cast<u32>(entry);
}

void VirtualIoapic::mmio_write(u32 offset, u32 value, ApicBus& bus) {
    if (offset == ioregsel_offset) {
        ioregsel_ = value & 0xFF;
        return;
    }
    if (offset != iowin_offset)
        return;
    if (ioregsel_ == index_id) {
        id_ = value & id_writable;
        return;
    }
    if (ioregsel_ < index_redirection || ioregsel_ >= index_redirection + 2 * pin_count)
        return; // version, arbitration: read-only; others reserved
    write_redirection((ioregsel_ - index_redirection) / 2, ioregsel_ & 1, value, bus);
}

void VirtualIoapic::write_redirection(u32 pin, bool high, u32 value, ApicBus& bus) {
    u64 entry = redirection_[pin];
    if (high)
        entry = (entry & 0xFFFFFFFFull) | (static_cast<u64>(value) << 32);
    else
        entry = (entry & ~0xFFFFFFFFull) | value;
    // Delivery status (12) and remote IRR (14) are read-only; delivery is immediate, so
    // delivery status always reads 0.
    entry = (entry & redirection_writable) | (redirection_[pin] & entry_remote_irr);
    if (!counts_remote_irr(entry))
        entry &= ~entry_remote_irr; // an edge pin holds no remote IRR (as KVM)
    redirection_[pin] = entry;
    // A level pin still asserted, now unmasked and not in service, delivers at once.
    if (!high && (entry & entry_level) && !(entry & entry_masked) && !(entry & entry_remote_irr) &&
        (lines_ >> pin) & 1)
        deliver(pin, bus);
}

void VirtualIoapic::deliver(u32 pin, ApicBus& bus) {
    u64& entry = redirection_[pin];
    const u32 mode = delivery_mode(entry);
    if (mode == 3)
        return; // reserved delivery mode
    ApicMessage m;
    m.vector = static_cast<u8>(entry & entry_vector);
    m.mode = static_cast<DeliveryMode>(mode);
    m.logical = (entry & entry_logical) != 0;
    m.level_triggered = (entry & entry_level) != 0;
    m.assert_level = true;
    m.shorthand = Shorthand::none;
    m.destination = static_cast<u32>(entry >> 56);
    m.source_apic_id = ioapic_source_id;
    m.x2apic_format = false;
    if (counts_remote_irr(entry))
        entry |= entry_remote_irr; // set before delivery: the EOI may come back at once
    bus.deliver(m);
}

void VirtualIoapic::set_irq(u32 pin, bool asserted, ApicBus& bus) {
    if (pin >= pin_count)
        return;
    const u32 bit = 1u << pin;
    const bool was_asserted = (lines_ & bit) != 0;
    lines_ = asserted ? (lines_ | bit) : (lines_ & ~bit);
    const u64 entry = redirection_[pin];
    if (!asserted || (entry & entry_masked))
        return; // a masked edge is lost; a masked level line delivers when unmasked
    if (entry & entry_level) {
        if (!(entry & entry_remote_irr))
            deliver(pin, bus);
    } else if (!was_asserted) {
        deliver(pin, bus);
    }
}

void VirtualIoapic::eoi(u8 vector, ApicBus& bus) {
    for (u32 pin = 0; pin < pin_count; ++pin) {
        u64& entry = redirection_[pin];
        if ((entry & entry_vector) != vector || !(entry & entry_remote_irr))
            continue;
        entry &= ~entry_remote_irr;
        if (((lines_ >> pin) & 1) && !(entry & entry_masked))
            deliver(pin, bus); // still asserted: the device wants service again
    }
}

void VirtualIoapic::save(State& out) const {
    out = State{};
    out.format = state_format;
    out.size = sizeof(State);
    out.id = id_;
    out.ioregsel = ioregsel_;
    out.lines = lines_;
    for (u32 pin = 0; pin < pin_count; ++pin)
        out.redirection[pin] = redirection_[pin];
}

bool VirtualIoapic::restore(const State& in) {
    if (in.format != state_format || in.size != sizeof(State) || (in.id & ~id_writable) != 0 ||
        in.ioregsel > 0xFF || (in.lines >> pin_count) != 0 || in.reserved != 0)
        return false;
    for (u64 entry : in.redirection) {
        if ((entry & ~(redirection_writable | entry_remote_irr)) != 0)
            return false;
        if ((entry & entry_remote_irr) && !counts_remote_irr(entry))
            return false;
    }
    id_ = in.id;
    ioregsel_ = in.ioregsel;
    lines_ = in.lines;
    for (u32 pin = 0; pin < pin_count; ++pin)
        redirection_[pin] = in.redirection[pin];
    return true;
}

} // namespace godwit::hv
