#include "root/root_startup.hpp"

namespace godwit::hv::root {
namespace {

bool swap_state(RootCpus& cpus, u32 index, ApState from, ApState to) {
    u8 expected = static_cast<u8>(from);
    return __atomic_compare_exchange_n(&cpus.states[index], &expected, static_cast<u8>(to), false,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

} // namespace

u64 startup_targets(const x86::IcrCommand& command, u32 self, const RootCpus& cpus, bool x2apic) {
    u64 all = cpus.count >= 64 ? ~0ull : (1ull << cpus.count) - 1;
    u64 me = self < cpus.count ? 1ull << self : 0;
    switch (command.shorthand) {
    case x86::Shorthand::self:
        return me;
    case x86::Shorthand::all_including_self:
        return all;
    case x86::Shorthand::all_excluding_self:
        return all & ~me;
    case x86::Shorthand::none:
        break;
    }
    if (command.logical)
        return 0;
    u32 broadcast = x2apic ? x86::x2apic_broadcast : x86::xapic_broadcast;
    if (command.destination == broadcast)
        return all;
    u64 targets = 0;
    for (u32 i = 0; i < cpus.count && i < 64; ++i) {
        if (cpus.apic_ids[i] == command.destination)
            targets |= 1ull << i;
    }
    return targets;
}

StartupAction claim_startup_ipi(const x86::IcrCommand& command, RootCpus& cpus, u32 index) {
    if (index >= cpus.count)
        return StartupAction::drop;
    if (command.mode == x86::DeliveryMode::startup)
        return swap_state(cpus, index, ApState::waiting_for_sipi, ApState::sipi_sent)
                   ? StartupAction::send
                   : StartupAction::drop;
    if (command.mode == x86::DeliveryMode::init && command.assert_level)
        return swap_state(cpus, index, ApState::running, ApState::init_sent) ? StartupAction::send
                                                                             : StartupAction::drop;
    return StartupAction::drop;
}

bool on_sipi_exit(RootCpus& cpus, u32 index) {
    if (index >= cpus.count)
        return false;
    if (swap_state(cpus, index, ApState::sipi_sent, ApState::running))
        return true;
    // A SIPI the policy did not send (none should exist): it starts the vCPU all the same.
    __atomic_store_n(&cpus.states[index], static_cast<u8>(ApState::running), __ATOMIC_RELEASE);
    return false;
}

bool on_init_exit(RootCpus& cpus, u32 index) {
    if (index >= cpus.count)
        return false;
    if (swap_state(cpus, index, ApState::init_sent, ApState::waiting_for_sipi))
        return true;
    // Not sent by the policy: still take the INIT state, so a later SIPI can start it.
    __atomic_store_n(&cpus.states[index], static_cast<u8>(ApState::waiting_for_sipi),
                     __ATOMIC_RELEASE);
    return false;
}

} // namespace godwit::hv::root
