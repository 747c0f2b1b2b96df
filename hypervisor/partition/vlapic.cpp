#include "partition/vlapic.hpp"

#include "arch/x86/apic_vectors.hpp"

namespace godwit::hv {
namespace {

// Register offsets in the xAPIC page (SDM Table 10-1); x2APIC MSR = 0x800 + offset / 16.
constexpr u32 reg_id = 0x20;
constexpr u32 reg_version = 0x30;
constexpr u32 reg_tpr = 0x80;
constexpr u32 reg_apr = 0x90;
constexpr u32 reg_ppr = 0xA0;
constexpr u32 reg_eoi = 0xB0;
constexpr u32 reg_rrd = 0xC0;
constexpr u32 reg_ldr = 0xD0;
constexpr u32 reg_dfr = 0xE0;
constexpr u32 reg_svr = 0xF0;
constexpr u32 reg_isr = 0x100;
constexpr u32 reg_tmr = 0x180;
constexpr u32 reg_irr = 0x200;
constexpr u32 reg_esr = 0x280;
constexpr u32 reg_icr_low = 0x300;
constexpr u32 reg_icr_high = 0x310;
constexpr u32 reg_lvt_timer = 0x320;
constexpr u32 reg_lvt_error = 0x370;
constexpr u32 reg_timer_initial = 0x380;
constexpr u32 reg_timer_current = 0x390;
constexpr u32 reg_timer_divide = 0x3E0;
constexpr u32 reg_self_ipi = 0x3F0;
constexpr u32 msr_icr = 0x830;

constexpr u32 lvt_mask_bit = 1u << 16;
// Writable bits per LVT (SDM Figure 10-8): vector, delivery mode, polarity, trigger, mask
// and the timer mode; delivery status and remote IRR are read-only (and stay 0 here,
// since delivery is immediate and LINT pins have no source).
constexpr u32 lvt_writable[6] = {0x000700FF, 0x000107FF, 0x000107FF,
                                 0x0001A7FF, 0x0001A7FF, 0x000100FF};
constexpr u32 timer_one_shot = 0;
constexpr u32 timer_periodic = 1;
constexpr u32 timer_tsc_deadline = 2;

constexpr u32 svr_writable = 0x3FF; // vector, APIC software enable (8), focus check (9)
constexpr u32 svr_enable = 1u << 8;
constexpr u32 icr_writable = 0x000CCFFF; // delivery status (12) reads 0: delivery is immediate
constexpr u32 divide_writable = 0xB;
constexpr u32 ldr_writable = 0xFF000000;
constexpr u32 dfr_fixed_ones = 0x0FFFFFFF;

// ESR bits this model raises (SDM 10.5.3).
constexpr u32 esr_send_illegal_vector = 1u << 5;
constexpr u32 esr_receive_illegal_vector = 1u << 6;
constexpr u32 esr_known = esr_send_illegal_vector | esr_receive_illegal_vector;

// Bounds tsc_per_bus_tick so initial count (32 bits) x tick (<= 2^24 x 128) fits in 64 bits.
constexpr u32 max_tsc_per_bus_tick = 1u << 24;

bool test_bit(const u32 (&bits)[8], u32 vector) {
    return (bits[(vector >> 5) & 7] >> (vector & 31)) & 1;
}
void set_bit(u32 (&bits)[8], u32 vector, bool value) {
    u32& word = bits[(vector >> 5) & 7];
    const u32 bit = 1u << (vector & 31);
    word = value ? (word | bit) : (word & ~bit);
}

u64 apic_base_reserved(u8 physical_bits) {
    const u64 address_mask = physical_bits >= 64 ? ~0ull : (1ull << physical_bits) - 1;
    return 0x2FFull | ~address_mask; // bits 7:0 and 9 are reserved (SDM Figure 10-26)
}

u64 divide_value(u32 divide_config) {
    // SDM Figure 10-10: bits 3,1,0 = 000 -> 2, 001 -> 4, ... 110 -> 128, 111 -> 1.
    const u32 code = ((divide_config & 8) >> 1) | (divide_config & 3);
    return 1ull << ((code + 1) & 7);
}

} // namespace

void VirtualLapic::reset(u32 apic_id, bool bsp, u32 tsc_per_bus_tick) {
    id_ = apic_id;
    tsc_per_bus_tick_ = tsc_per_bus_tick == 0                     ? 1
                        : tsc_per_bus_tick > max_tsc_per_bus_tick ? max_tsc_per_bus_tick
                                                                  : tsc_per_bus_tick;
    apic_base_ = default_base | apic_base_enable | (bsp ? apic_base_bsp : 0);
    reset_registers();
    nmi_pending_ = false;
    init_pending_ = false;
    sipi_pending_ = false;
    sipi_vector_ = 0;
}

void VirtualLapic::init() {
    // The latched events stay: a SIPI that raced ahead of the vCPU's INIT handling must
    // still start it.
    reset_registers();
}

void VirtualLapic::set_physical_address_bits(u8 bits) {
    base_reserved_mask_ = apic_base_reserved(bits < 32 ? 32 : bits > 52 ? 52 : bits);
}

void VirtualLapic::reset_registers() {
    tpr_ = 0;
    ldr_ = 0;
    dfr_ = 0xFFFFFFFF;
    svr_ = 0xFF;
    esr_ = 0;
    esr_pending_ = 0;
    icr_low_ = 0;
    icr_high_ = 0;
    for (u32& lvt : lvt_)
        lvt = lvt_mask_bit;
    timer_initial_ = 0;
    timer_divide_ = 0;
    for (u32 i = 0; i < 8; ++i) {
        isr_[i] = 0;
        tmr_[i] = 0;
        irr_[i] = 0;
    }
    timer_running_ = false;
    timer_next_ = 0;
    tsc_deadline_ = 0;
}

bool VirtualLapic::hardware_enabled() const {
    return (apic_base_ & apic_base_enable) != 0;
}
bool VirtualLapic::xapic_enabled() const {
    return hardware_enabled() && (apic_base_ & apic_base_extd) == 0;
}
bool VirtualLapic::x2apic_enabled() const {
    return hardware_enabled() && (apic_base_ & apic_base_extd) != 0;
}
bool VirtualLapic::software_enabled() const {
    return (svr_ & svr_enable) != 0;
}
u64 VirtualLapic::base_address() const {
    return apic_base_ & ~0xFFFull;
}
u64 VirtualLapic::apic_base_msr() const {
    return apic_base_;
}

u32 VirtualLapic::ppr() const {
    // SDM 10.8.3.1: PPR = TPR if TPR[7:4] >= ISRV[7:4], else ISRV[7:4] << 4.
    const int isrv = x86::highest_vector(isr_);
    const u32 isr_class = isrv < 0 ? 0 : static_cast<u32>(isrv) & 0xF0;
    return (tpr_ & 0xF0) >= isr_class ? tpr_ : isr_class;
}

u32 VirtualLapic::logical_id() const {
    if (x2apic_enabled()) // SDM 10.12.10.2: derived from the x2APIC id, read-only
        return ((id_ >> 4) << 16) | (1u << (id_ & 0xF));
    return ldr_;
}

// ---- timer (SDM 10.5.4) ----

u32 VirtualLapic::timer_mode() const {
    return (lvt_[lvt_timer] >> 17) & 3;
}

u64 VirtualLapic::timer_tick() const {
    return static_cast<u64>(tsc_per_bus_tick_) * divide_value(timer_divide_);
}

u64 VirtualLapic::timer_next(u64 now_tsc) const {
    if (now_tsc < timer_next_ || timer_mode() != timer_periodic)
        return timer_next_;
    // Periodic and overdue (expiry not yet processed): the reload after the missed periods.
    const u64 period = static_cast<u64>(timer_initial_) * timer_tick();
    if (period == 0)
        return timer_next_; // not counting (the initial count is never 0 while running)
    return timer_next_ + period * ((now_tsc - timer_next_) / period + 1);
}

u32 VirtualLapic::timer_current_count(u64 now_tsc) const {
    if (!timer_running_ || timer_mode() == timer_tsc_deadline)
        return 0;
    const u64 next = timer_next(now_tsc);
    if (now_tsc >= next)
        return 0; // one-shot ran out
    // Never above the initial count, even if the caller's clock stepped back.
    const u64 count = (next - now_tsc) / timer_tick();
    return count > timer_initial_ ? timer_initial_ : static_cast<u32>(count);
}

void VirtualLapic::expire_timer(u64 now_tsc) {
    if (timer_mode() == timer_tsc_deadline) {
        // SDM 10.5.4.1: expiry disarms the timer and clears IA32_TSC_DEADLINE.
        if (tsc_deadline_ != 0 && now_tsc >= tsc_deadline_) {
            tsc_deadline_ = 0;
            raise_local(lvt_timer);
        }
        return;
    }
    if (!timer_running_ || now_tsc < timer_next_)
        return;
    if (timer_mode() == timer_periodic) {
        // Missed periods collapse into one interrupt (IRR holds one bit per vector).
        timer_next_ = timer_next(now_tsc);
    } else {
        timer_running_ = false; // one-shot (and the reserved mode 3) stop at 0
    }
    raise_local(lvt_timer);
}

void VirtualLapic::write_initial_count(u32 value, u64 now_tsc) {
    if (timer_mode() == timer_tsc_deadline)
        return; // SDM 10.5.4.1: ignored in TSC-deadline mode
    timer_initial_ = value;
    timer_running_ = value != 0;
    timer_next_ = timer_running_ ? now_tsc + static_cast<u64>(value) * timer_tick() : 0;
}

void VirtualLapic::write_divide(u32 value, u64 now_tsc) {
    // A running count keeps its current value and continues at the new rate.
    const bool running = timer_running_ && timer_mode() != timer_tsc_deadline;
    const u32 count = running ? timer_current_count(now_tsc) : 0;
    timer_divide_ = value & divide_writable;
    if (running)
        timer_next_ = now_tsc + static_cast<u64>(count) * timer_tick();
}

u64 VirtualLapic::timer_deadline() const {
    if (!hardware_enabled() || (lvt_[lvt_timer] & lvt_mask_bit) != 0)
        return 0;
    if (timer_mode() == timer_tsc_deadline)
        return tsc_deadline_;
    if (!timer_running_)
        return 0;
    return timer_next_ == 0 ? 1 : timer_next_;
}

// ---- interrupt acceptance and priority (SDM 10.8) ----

void VirtualLapic::set_irr(u32 vector, bool level_triggered) {
    set_bit(irr_, vector, true);
    set_bit(tmr_, vector, level_triggered);
}

void VirtualLapic::signal_error(u32 bit) {
    esr_pending_ |= bit;
    const u32 lvt = lvt_[lvt_error];
    const u32 vector = lvt & 0xFF;
    if ((lvt & lvt_mask_bit) == 0 && vector >= 16)
        set_irr(vector, false);
}

void VirtualLapic::raise_local(u32 lvt_index) {
    const u32 lvt = lvt_[lvt_index];
    if ((lvt & lvt_mask_bit) != 0)
        return;
    const u32 vector = lvt & 0xFF;
    if (vector < 16) {
        signal_error(esr_receive_illegal_vector);
        return;
    }
    set_irr(vector, false);
}

void VirtualLapic::accept(const ApicMessage& m) {
    if (!hardware_enabled())
        return;
    switch (m.mode) {
    case DeliveryMode::fixed:
    case DeliveryMode::lowest_priority:
        if (!software_enabled())
            return; // as KVM: a software-disabled APIC drops fixed interrupts
        if (m.vector < 16) {
            signal_error(esr_receive_illegal_vector);
            return;
        }
        set_irr(m.vector, m.level_triggered);
        return;
    case DeliveryMode::nmi:
        nmi_pending_ = true;
        return;
    case DeliveryMode::init:
        if (m.level_triggered && !m.assert_level)
            return; // INIT level de-assert only resynchronises arbitration ids
        init_pending_ = true;
        return;
    case DeliveryMode::startup:
        sipi_pending_ = true;
        sipi_vector_ = m.vector;
        return;
    case DeliveryMode::smi:
    case DeliveryMode::ext_int:
        return; // not supported (no SMM, no 8259): dropped
    }
}

int VirtualLapic::pending_vector(u64 now_tsc) {
    if (!hardware_enabled())
        return -1;
    expire_timer(now_tsc);
    const int vector = x86::highest_vector(irr_);
    return x86::deliverable(vector, ppr()) ? vector : -1;
}

void VirtualLapic::acknowledge(u8 vector) {
    set_bit(irr_, vector, false);
    set_bit(isr_, vector, true);
}

void VirtualLapic::eoi(ApicBus& bus) {
    // SDM 10.8.5: EOI retires the highest-priority in-service interrupt; level-triggered
    // ones (TMR set) are broadcast to the IOAPIC (no directed EOI: SVR bit 12 unsupported).
    const int vector = x86::highest_vector(isr_);
    if (vector < 0)
        return;
    set_bit(isr_, static_cast<u32>(vector), false);
    if (test_bit(tmr_, static_cast<u32>(vector)))
        bus.eoi_level(static_cast<u8>(vector));
}

bool VirtualLapic::take_nmi() {
    const bool pending = nmi_pending_;
    nmi_pending_ = false;
    return pending;
}
bool VirtualLapic::take_init() {
    const bool pending = init_pending_;
    init_pending_ = false;
    return pending;
}
bool VirtualLapic::take_sipi(u8& vector) {
    if (!sipi_pending_)
        return false;
    sipi_pending_ = false;
    vector = sipi_vector_;
    return true;
}

// ---- IPIs and destinations (SDM 10.6) ----

void VirtualLapic::send_ipi(u32 icr_low, u32 destination, ApicBus& bus) {
    x86::IcrCommand c = x86::decode_icr_low(icr_low, destination);
    if (static_cast<u8>(c.mode) == x86::delivery_mode_reserved)
        return;
    if (c.mode == DeliveryMode::init && !c.assert_level && c.level_triggered)
        return; // INIT level de-assert: no effect on receivers (SDM 10.6.1)
    if ((c.mode == DeliveryMode::fixed || c.mode == DeliveryMode::lowest_priority) &&
        c.vector < 16) {
        signal_error(esr_send_illegal_vector);
        return;
    }
    ApicMessage m;
    m.vector = c.vector;
    m.mode = c.mode;
    m.logical = c.logical;
    m.level_triggered = false; // the ICR trigger bit only qualifies INIT de-assert
    m.assert_level = true;
    m.shorthand = c.shorthand;
    m.destination = c.destination;
    m.source_apic_id = id_;
    m.x2apic_format = x2apic_enabled();
    bus.deliver(m);
}

bool VirtualLapic::matches(const ApicMessage& m) const {
    if (!hardware_enabled())
        return false;
    switch (m.shorthand) {
    case Shorthand::self:
        return m.source_apic_id == id_;
    case Shorthand::all_including_self:
        return true;
    case Shorthand::all_excluding_self:
        return m.source_apic_id != id_;
    case Shorthand::none:
        break;
    }
    const u32 broadcast = m.x2apic_format ? apic_broadcast_x2apic : apic_broadcast_xapic;
    if (m.destination == broadcast)
        return true;
    if (x2apic_enabled()) {
        if (!m.logical)
            return m.destination == id_;
        // SDM 10.12.10.2: cluster id in bits 31:16, member bitmap in bits 15:0.
        const u32 ldr = logical_id();
        return (ldr >> 16) == (m.destination >> 16) && (ldr & m.destination & 0xFFFF) != 0;
    }
    if (m.destination > 0xFF)
        return false; // an x2APIC-format destination an xAPIC cannot be addressed by
    const u32 destination = m.destination;
    if (!m.logical)
        return destination == (id_ & 0xFF);
    const u32 ldr = ldr_ >> 24;
    switch (dfr_ >> 28) {
    case 0xF: // flat model (SDM 10.6.2.2): bitmap of up to 8 APICs
        return (ldr & destination) != 0;
    case 0x0: // cluster model: cluster in bits 7:4, member bitmap in bits 3:0
        return (ldr >> 4) == (destination >> 4) && (ldr & destination & 0xF) != 0;
    default:
        return false;
    }
}

// ---- register file ----

void VirtualLapic::write_svr(u32 value) {
    svr_ = value & svr_writable;
    if (!software_enabled()) {
        // SDM 10.4.7.2: software disable sets every LVT mask bit.
        for (u32& lvt : lvt_)
            lvt |= lvt_mask_bit;
    }
}

void VirtualLapic::write_lvt(u32 index, u32 value) {
    value &= lvt_writable[index];
    if (!software_enabled())
        value |= lvt_mask_bit; // mask bits cannot be cleared while software-disabled
    if (index == lvt_timer) {
        const bool was_deadline = timer_mode() == timer_tsc_deadline;
        const bool is_deadline = ((value >> 17) & 3) == timer_tsc_deadline;
        if (was_deadline != is_deadline) {
            // Switching into or out of TSC-deadline mode disarms the timer (as KVM).
            timer_initial_ = 0;
            timer_running_ = false;
            timer_next_ = 0;
            tsc_deadline_ = 0;
        }
    }
    lvt_[index] = value;
}

bool VirtualLapic::read_register(u32 offset, u32& value, u64 now_tsc) const {
    const bool x2 = x2apic_enabled();
    if (offset >= reg_isr && offset < reg_esr) {
        const u32 index = (offset - reg_isr) / 0x10;
        const u32(&bits)[8] = index < 8 ? isr_ : index < 16 ? tmr_ : irr_;
        value = bits[index & 7];
        return true;
    }
    if (offset >= reg_lvt_timer && offset <= reg_lvt_error) {
        value = lvt_[(offset - reg_lvt_timer) / 0x10];
        return true;
    }
    switch (offset) {
    case reg_id:
        value = x2 ? id_ : (id_ & 0xFF) << 24;
        return true;
    case reg_version:
        value = version_value;
        return true;
    case reg_tpr:
        value = tpr_;
        return true;
    case reg_ppr:
        value = ppr();
        return true;
    case reg_apr: // arbitration priority: not modelled, reads 0 (no x2APIC MSR)
    case reg_eoi: // write-only
    case reg_rrd: // remote read: not supported by modern APICs
        value = 0;
        return !x2;
    case reg_ldr:
        value = logical_id();
        return true;
    case reg_dfr:
        value = dfr_;
        return !x2;
    case reg_svr:
        value = svr_;
        return true;
    case reg_esr:
        value = esr_;
        return true;
    case reg_icr_low:
        value = icr_low_;
        return true;
    case reg_icr_high:
        value = icr_high_;
        return !x2;
    case reg_timer_initial:
        value = timer_initial_;
        return true;
    case reg_timer_current:
        value = timer_current_count(now_tsc);
        return true;
    case reg_timer_divide:
        value = timer_divide_;
        return true;
    default:
        value = 0; // reserved, CMCI (not supported), SELF IPI (write-only)
        return false;
    }
}

bool VirtualLapic::write_register(u32 offset, u32 value, u64 now_tsc, ApicBus& bus) {
    const bool x2 = x2apic_enabled();
    if (offset >= reg_lvt_timer && offset <= reg_lvt_error) {
        write_lvt((offset - reg_lvt_timer) / 0x10, value);
        return true;
    }
    switch (offset) {
    case reg_tpr:
        tpr_ = value & 0xFF;
        return true;
    case reg_eoi:
        if (x2 && value != 0)
            return false; // SDM 10.12.1.2: non-zero EOI writes #GP in x2APIC mode
        eoi(bus);
        return true;
    case reg_ldr:
        if (x2)
            return false; // read-only in x2APIC mode
        ldr_ = value & ldr_writable;
        return true;
    case reg_dfr:
        if (x2)
            return false;
        dfr_ = value | dfr_fixed_ones;
        return true;
    case reg_svr:
        write_svr(value);
        return true;
    case reg_esr:
        if (x2 && value != 0)
            return false;
        // A write latches the errors collected since the last write (SDM 10.5.3).
        esr_ = esr_pending_;
        esr_pending_ = 0;
        return true;
    case reg_icr_low:
        if (x2)
            return false; // x2APIC: one 64-bit MSR 0x830 (msr_write)
        icr_low_ = value & icr_writable;
        send_ipi(icr_low_, icr_high_ >> 24, bus);
        return true;
    case reg_icr_high:
        if (x2)
            return false;
        icr_high_ = value & 0xFF000000;
        return true;
    case reg_timer_initial:
        write_initial_count(value, now_tsc);
        return true;
    case reg_timer_divide:
        write_divide(value, now_tsc);
        return true;
    case reg_self_ipi:
        if (!x2)
            return false; // SELF IPI exists only in x2APIC mode
        send_ipi((value & 0xFF) | (static_cast<u32>(Shorthand::self) << 18), 0, bus);
        return true;
    default:
        return false; // read-only (ID, version, PPR, ISR/TMR/IRR, current count) or reserved
    }
}

u32 VirtualLapic::mmio_read(u32 offset, u64 now_tsc) {
    if (!xapic_enabled() || (offset & 0xF) != 0 || offset >= 0x400)
        return 0;
    expire_timer(now_tsc);
    u32 value = 0;
    read_register(offset, value, now_tsc);
    return value;
}

void VirtualLapic::mmio_write(u32 offset, u32 value, u64 now_tsc, ApicBus& bus) {
    if (!xapic_enabled() || (offset & 0xF) != 0 || offset >= 0x400)
        return;
    expire_timer(now_tsc);
    write_register(offset, value, now_tsc, bus);
}

// ---- MSRs ----

bool VirtualLapic::owns_msr(u32 msr) {
    return msr == msr_apic_base || msr == msr_tsc_deadline ||
           (msr >= msr_x2apic_first && msr <= msr_x2apic_last);
}

bool VirtualLapic::set_apic_base(u64 value) {
    if ((value & base_reserved_mask_) != 0)
        return false;
    const bool enable = (value & apic_base_enable) != 0;
    const bool extd = (value & apic_base_extd) != 0;
    if (!enable && extd)
        return false; // the invalid state (SDM 10.12.5)
    const bool was_enabled = hardware_enabled();
    const bool was_x2 = x2apic_enabled();
    if (was_x2 && enable && !extd)
        return false; // x2APIC -> xAPIC must go through disabled
    if (!was_enabled && extd)
        return false; // disabled -> x2APIC must go through xAPIC
    if (was_enabled && !enable)
        reset_registers(); // register state is not preserved across the disabled state
    apic_base_ = value;
    return true;
}

bool VirtualLapic::msr_read(u32 msr, u64& value, u64 now_tsc) {
    if (msr == msr_apic_base) {
        value = apic_base_;
        return true;
    }
    if (msr == msr_tsc_deadline) {
        expire_timer(now_tsc);
        value = timer_mode() == timer_tsc_deadline ? tsc_deadline_ : 0;
        return true;
    }
    if (msr < msr_x2apic_first || msr > msr_x2apic_last || !x2apic_enabled())
        return false;
    expire_timer(now_tsc);
    if (msr == msr_icr) {
        value = (static_cast<u64>(icr_high_) << 32) | icr_low_;
        return true;
    }
    u32 low = 0;
    if (!read_register((msr - msr_x2apic_first) << 4, low, now_tsc))
        return false;
    value = low;
    return true;
}

bool VirtualLapic::msr_write(u32 msr, u64 value, u64 now_tsc, ApicBus& bus) {
    if (msr == msr_apic_base) {
        expire_timer(now_tsc);
        return set_apic_base(value);
    }
    if (msr == msr_tsc_deadline) {
        expire_timer(now_tsc);
        // SDM 10.5.4.1: writes outside TSC-deadline mode are ignored; 0 disarms.
        if (timer_mode() == timer_tsc_deadline)
            tsc_deadline_ = value;
        return true;
    }
    if (msr < msr_x2apic_first || msr > msr_x2apic_last || !x2apic_enabled())
        return false;
    expire_timer(now_tsc);
    if (msr == msr_icr) {
        icr_low_ = static_cast<u32>(value) & icr_writable;
        icr_high_ = static_cast<u32>(value >> 32);
        send_ipi(icr_low_, icr_high_, bus);
        return true;
    }
    if ((value >> 32) != 0)
        return false; // bits 63:32 are reserved in every other x2APIC register
    return write_register((msr - msr_x2apic_first) << 4, static_cast<u32>(value), now_tsc, bus);
}

// ---- save/restore ----

void VirtualLapic::save(State& out, u64 now_tsc) const {
    out = State{};
    out.format = state_format;
    out.size = sizeof(State);
    out.apic_id = id_;
    out.tsc_per_bus_tick = tsc_per_bus_tick_;
    out.apic_base = apic_base_;
    out.tpr = tpr_;
    out.ldr = ldr_;
    out.dfr = dfr_;
    out.svr = svr_;
    out.esr = esr_;
    out.esr_pending = esr_pending_;
    out.icr_low = icr_low_;
    out.icr_high = icr_high_;
    for (u32 i = 0; i < lvt_count; ++i)
        out.lvt[i] = lvt_[i];
    out.timer_initial_count = timer_initial_;
    out.timer_divide = timer_divide_;
    for (u32 i = 0; i < 8; ++i) {
        out.isr[i] = isr_[i];
        out.tmr[i] = tmr_[i];
        out.irr[i] = irr_[i];
    }
    const bool counting = timer_running_ && timer_mode() != timer_tsc_deadline;
    if (counting) {
        // An expiry that is due but not yet processed is saved as due (0), so its
        // interrupt is not lost to the periodic reload.
        out.timer_armed = 1;
        out.timer_remaining = timer_next_ > now_tsc ? timer_next_ - now_tsc : 0;
    }
    out.tsc_deadline = timer_mode() == timer_tsc_deadline ? tsc_deadline_ : 0;
    out.nmi_pending = nmi_pending_;
    out.init_pending = init_pending_;
    out.sipi_pending = sipi_pending_;
    out.sipi_vector = sipi_vector_;
}

bool VirtualLapic::restore(const State& in, u64 now_tsc) {
    if (in.format != state_format || in.size != sizeof(State) || in.apic_id != id_)
        return false;
    if (in.tsc_per_bus_tick == 0 || in.tsc_per_bus_tick > max_tsc_per_bus_tick)
        return false;
    const bool enable = (in.apic_base & apic_base_enable) != 0;
    const bool extd = (in.apic_base & apic_base_extd) != 0;
    if ((in.apic_base & base_reserved_mask_) != 0 || (!enable && extd))
        return false;
    if (in.tpr > 0xFF || (in.ldr & ~ldr_writable) != 0 ||
        (in.dfr & dfr_fixed_ones) != dfr_fixed_ones || (in.svr & ~svr_writable) != 0 ||
        (in.esr & ~esr_known) != 0 || (in.esr_pending & ~esr_known) != 0 ||
        (in.icr_low & ~icr_writable) != 0 || (in.timer_divide & ~divide_writable) != 0)
        return false;
    if (!(enable && extd) && (in.icr_high & ~0xFF000000u) != 0)
        return false; // an xAPIC ICR destination is 8 bits
    const bool sw_enabled = (in.svr & svr_enable) != 0;
    for (u32 i = 0; i < lvt_count; ++i) {
        if ((in.lvt[i] & ~lvt_writable[i]) != 0 || (!sw_enabled && !(in.lvt[i] & lvt_mask_bit)))
            return false;
    }
    // Vectors 0-15 are never accepted (illegal vector), so they cannot be pending.
    if ((in.isr[0] & 0xFFFF) != 0 || (in.tmr[0] & 0xFFFF) != 0 || (in.irr[0] & 0xFFFF) != 0)
        return false;
    const u32 mode = (in.lvt[lvt_timer] >> 17) & 3;
    const u64 tick = static_cast<u64>(in.tsc_per_bus_tick) * divide_value(in.timer_divide);
    if (in.timer_armed > 1 || (in.timer_armed == 0 && in.timer_remaining != 0) ||
        (in.timer_armed == 1 &&
         (mode == timer_tsc_deadline || in.timer_initial_count == 0 ||
          in.timer_remaining > static_cast<u64>(in.timer_initial_count) * tick)))
        return false;
    if ((mode != timer_tsc_deadline && in.tsc_deadline != 0) ||
        (mode == timer_tsc_deadline && in.timer_initial_count != 0))
        return false;
    if (in.nmi_pending > 1 || in.init_pending > 1 || in.sipi_pending > 1)
        return false;
    for (u8 byte : in.reserved) {
        if (byte != 0)
            return false;
    }

    tsc_per_bus_tick_ = in.tsc_per_bus_tick;
    apic_base_ = in.apic_base;
    tpr_ = in.tpr;
    ldr_ = in.ldr;
    dfr_ = in.dfr;
    svr_ = in.svr;
    esr_ = in.esr;
    esr_pending_ = in.esr_pending;
    icr_low_ = in.icr_low;
    icr_high_ = in.icr_high;
    for (u32 i = 0; i < lvt_count; ++i)
        lvt_[i] = in.lvt[i];
    timer_initial_ = in.timer_initial_count;
    timer_divide_ = in.timer_divide;
    for (u32 i = 0; i < 8; ++i) {
        isr_[i] = in.isr[i];
        tmr_[i] = in.tmr[i];
        irr_[i] = in.irr[i];
    }
    timer_running_ = in.timer_armed != 0;
    timer_next_ = timer_running_ ? now_tsc + in.timer_remaining : 0;
    tsc_deadline_ = in.tsc_deadline;
    nmi_pending_ = in.nmi_pending != 0;
    init_pending_ = in.init_pending != 0;
    sipi_pending_ = in.sipi_pending != 0;
    sipi_vector_ = in.sipi_vector;
    return true;
}

} // namespace godwit::hv
