// The virtual local APIC of one guest vCPU (Intel SDM Vol. 3A, "Advanced Programmable
// Interrupt Controller"): xAPIC MMIO and x2APIC MSR register files, TPR/PPR/IRR/ISR
// priority, EOI, the LVT timer (one-shot, periodic, TSC-deadline), ICR/SELF-IPI sending
// and destination matching. Pure logic: time comes in as the guest's TSC (`now_tsc`),
// interrupts leave through ApicBus, and the partition wires it to VM exits and injection.
// Model and limits: docs/virtual-interrupts.md.
#pragma once

#include "arch/x86/apic_icr.hpp"
#include "lib/types.hpp"

#include <type_traits>

namespace godwit::hv {

// An interrupt message between APICs of one partition (an IPI from an ICR/SELF-IPI write,
// an IOAPIC redirection entry firing, or a local error interrupt). The partition resolves
// the destination over its vCPUs with VirtualLapic::matches() and hands it to accept().
using DeliveryMode = x86::DeliveryMode;
using Shorthand = x86::Shorthand;

struct ApicMessage {
    u8 vector = 0;
    DeliveryMode mode = DeliveryMode::fixed;
    bool logical = false;         // destination mode: logical (LDR/DFR) instead of physical
    bool level_triggered = false; // sets the receiver's TMR bit (EOI then goes to the bus)
    bool assert_level = true;     // false only for an INIT level de-assert (never sent)
    Shorthand shorthand = Shorthand::none;
    // xAPIC sender / IOAPIC: 8-bit (0xFF = broadcast); x2APIC sender: 32-bit
    // (0xFFFFFFFF = broadcast). x2apic_format says which.
    u32 destination = 0;
    u32 source_apic_id = 0; // the sender's APIC id (for the self shorthands); IOAPIC: ~0u
    bool x2apic_format = false;
};

inline constexpr u32 apic_broadcast_xapic = 0xFF;
inline constexpr u32 apic_broadcast_x2apic = 0xFFFFFFFF;
inline constexpr u32 ioapic_source_id = 0xFFFFFFFF;

class ApicBus {
  public:
    // Route a message to every APIC of the partition whose matches() is true.
    virtual void deliver(const ApicMessage& message) = 0;
    // A level-triggered interrupt (TMR set) was EOIed: the IOAPIC clears remote IRR.
    virtual void eoi_level(u8 vector) = 0;

  protected:
    ~ApicBus() = default;
};

class VirtualLapic {
  public:
    // Architectural constants of this model.
    static constexpr u64 default_base = 0xFEE00000;
    static constexpr u32 version_value = 0x00050014; // version 0x14, 6 LVT entries (no CMCI)
    static constexpr u32 msr_apic_base = 0x1B;
    static constexpr u32 msr_tsc_deadline = 0x6E0;
    static constexpr u32 msr_x2apic_first = 0x800;
    static constexpr u32 msr_x2apic_last = 0x8FF;
    static constexpr u64 apic_base_bsp = 1u << 8;
    static constexpr u64 apic_base_extd = 1u << 10;
    static constexpr u64 apic_base_enable = 1u << 11;

    // Power-on state (SDM 10.4.7.1): APIC_BASE = 0xFEE00000 | EN (| BSP), xAPIC mode,
    // software-disabled (SVR = 0xFF), all LVTs masked. tsc_per_bus_tick: TSC cycles per
    // APIC bus clock; the timer counts bus clocks / divide (0 is treated as 1).
    void reset(u32 apic_id, bool bsp, u32 tsc_per_bus_tick);
    // INIT (SDM 10.4.7.3): registers as after reset, but APIC_BASE (mode) and the id stay.
    void init();
    // Guest MAXPHYADDR for the IA32_APIC_BASE reserved-bit check (default 36).
    void set_physical_address_bits(u8 bits);

    bool xapic_enabled() const;  // EN=1, EXTD=0: the MMIO page at base_address() is live
    bool x2apic_enabled() const; // EN=1, EXTD=1: registers are MSRs 0x800-0x8FF
    bool hardware_enabled() const;
    bool software_enabled() const; // SVR bit 8
    u64 base_address() const;
    u64 apic_base_msr() const;
    u32 apic_id() const { return id_; }

    // xAPIC MMIO, offset in the 4 KiB page, aligned 32-bit accesses (the caller splits or
    // rejects others). Reserved and write-only registers read 0; writes to read-only or
    // reserved registers are ignored. Does nothing (reads 0) unless xapic_enabled().
    u32 mmio_read(u32 offset, u64 now_tsc);
    void mmio_write(u32 offset, u32 value, u64 now_tsc, ApicBus& bus);

    // MSRs: IA32_APIC_BASE (0x1B), IA32_TSC_DEADLINE (0x6E0) and the x2APIC range
    // 0x800-0x8FF (SDM 10.12.1.2). false = the WRMSR/RDMSR raises #GP. Returns false for
    // MSRs it does not own, so the caller checks owns_msr() first.
    static bool owns_msr(u32 msr);
    bool msr_read(u32 msr, u64& value, u64 now_tsc);
    bool msr_write(u32 msr, u64 value, u64 now_tsc, ApicBus& bus);

    // CR8 is TPR[7:4] (SDM 10.8.6.1); the vCPU's MOV CR8 exits land here.
    u32 tpr() const { return tpr_; }
    void set_tpr(u32 value) { tpr_ = value & 0xFF; }
    u32 ppr() const; // processor priority (SDM 10.8.3.1)

    // Is this APIC a destination of `m` (shorthand w.r.t. source_apic_id, physical id,
    // logical flat/cluster (xAPIC) or cluster (x2APIC), broadcast)? False while
    // hardware-disabled.
    bool matches(const ApicMessage& m) const;
    // Take a message addressed to this APIC: fixed/lowest priority set IRR (and TMR when
    // level-triggered; dropped while software-disabled); NMI, INIT and SIPI are latched
    // for the vCPU loop; SMI and ExtINT are not supported and dropped.
    void accept(const ApicMessage& m);

    // Expires the timer at now_tsc, then returns the highest IRR vector whose priority
    // class beats the PPR, or -1 (also -1 while hardware-disabled).
    int pending_vector(u64 now_tsc);
    // The vCPU took `vector` (injected it): IRR -> ISR, so PPR rises.
    void acknowledge(u8 vector);
    // Guest TSC of the next timer expiry that raises an interrupt; 0 = none armed (or the
    // LVT timer is masked: it still counts, lazily, but needs no wake-up).
    u64 timer_deadline() const;

    // Latched events, consumed by the vCPU loop. take_sipi is only meaningful in the
    // wait-for-SIPI state; the loop discards SIPIs otherwise.
    bool take_nmi();
    bool take_init();
    bool take_sipi(u8& vector);

    // Full register state for save/restore and migration. The timer is stored relative to
    // now_tsc (remaining TSC cycles); a TSC deadline is stored as the absolute guest TSC.
    struct State {
        u32 format;  // state_format
        u32 size;    // sizeof(State)
        u32 apic_id; // must equal the restoring APIC's id
        u32 tsc_per_bus_tick;
        u64 apic_base;
        u32 tpr;
        u32 ldr; // xAPIC value (derived again in x2APIC mode)
        u32 dfr;
        u32 svr;
        u32 esr;         // readable error status (latched by the last ESR write)
        u32 esr_pending; // errors collected since
        u32 icr_low;
        u32 icr_high;
        u32 lvt[6]; // timer, thermal, performance, LINT0, LINT1, error
        u32 timer_initial_count;
        u32 timer_divide;
        u32 isr[8];
        u32 tmr[8];
        u32 irr[8];
        u64 timer_remaining; // TSC cycles to the next expiry (one-shot/periodic), if armed
        u64 tsc_deadline;    // IA32_TSC_DEADLINE (TSC-deadline mode), 0 = disarmed
        u8 timer_armed;      // one-shot/periodic counting (0/1)
        u8 nmi_pending;
        u8 init_pending;
        u8 sipi_pending;
        u8 sipi_vector;
        u8 reserved[3]; // zero
    };
    static constexpr u32 state_format = 1;
    void save(State& out, u64 now_tsc) const;
    // Validates everything first (false = bad state, nothing changed).
    bool restore(const State& in, u64 now_tsc);

  private:
    enum Lvt : u32 { lvt_timer, lvt_thermal, lvt_performance, lvt_lint0, lvt_lint1, lvt_error };
    static constexpr u32 lvt_count = 6;

    void reset_registers();
    // One register by its xAPIC offset, with the current mode's rules. false: the
    // register does not exist or is write-only (read) / read-only (write) in this mode.
    bool read_register(u32 offset, u32& value, u64 now_tsc) const;
    bool write_register(u32 offset, u32 value, u64 now_tsc, ApicBus& bus);
    void write_lvt(u32 index, u32 value);
    void write_svr(u32 value);
    void write_divide(u32 value, u64 now_tsc);
    void write_initial_count(u32 value, u64 now_tsc);
    void eoi(ApicBus& bus);
    void send_ipi(u32 icr_low, u32 destination, ApicBus& bus);
    void signal_error(u32 bit);
    bool set_apic_base(u64 value);
    u32 logical_id() const; // LDR as read in the current mode
    u32 timer_mode() const;
    u64 timer_tick() const;            // TSC cycles per timer count at the current divide
    u64 timer_next(u64 now_tsc) const; // next one-shot/periodic expiry as seen at now_tsc
    u32 timer_current_count(u64 now_tsc) const;
    void expire_timer(u64 now_tsc);
    void raise_local(u32 lvt_index);
    void set_irr(u32 vector, bool level_triggered);

    u32 id_ = 0;
    u32 tsc_per_bus_tick_ = 1;
    u64 apic_base_ = default_base | apic_base_enable;
    u64 base_reserved_mask_ = 0x2FF | ~((1ull << 36) - 1); // MAXPHYADDR 36 until set
    u32 tpr_ = 0;
    u32 ldr_ = 0;
    u32 dfr_ = 0xFFFFFFFF;
    u32 svr_ = 0xFF;
    u32 esr_ = 0;
    u32 esr_pending_ = 0;
    u32 icr_low_ = 0;
    u32 icr_high_ = 0;
    u32 lvt_[lvt_count] = {};
    u32 timer_initial_ = 0;
    u32 timer_divide_ = 0;
    u32 isr_[8] = {};
    u32 tmr_[8] = {};
    u32 irr_[8] = {};
    bool timer_running_ = false; // one-shot/periodic counting
    u64 timer_next_ = 0;         // guest TSC of the next expiry while timer_running_
    u64 tsc_deadline_ = 0;       // TSC-deadline mode: armed deadline, 0 = disarmed
    bool nmi_pending_ = false;
    bool init_pending_ = false;
    bool sipi_pending_ = false;
    u8 sipi_vector_ = 0;
};

static_assert(std::is_trivially_copyable_v<VirtualLapic::State>);
static_assert(sizeof(VirtualLapic::State) == 208, "VirtualLapic::State is a saved format");

} // namespace godwit::hv
