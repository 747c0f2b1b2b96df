#include "hypercall/hypercall.hpp"

namespace godwit::hv::hypercall {
namespace {

constexpr Result status(u64 s, u64 value = 0) {
    return Result{s, value};
}

// A struct-sized output: the buffer must hold the struct, sit in caller memory and the
// unused argument must be zero (reserved, so it can get a meaning later).
template <typename T>
Result struct_out(const Call& c, HypercallHost& host, const T& value) {
    if (c.arg2 != 0)
        return status(GODWIT_HC_BAD_ARGUMENT);
    if (c.arg1 < sizeof(T) || c.arg1 > struct_buffer_max)
        return status(GODWIT_HC_BAD_LENGTH);
    if (!host.caller_owns(c.arg0, c.arg1))
        return status(GODWIT_HC_BAD_ADDRESS);
    host.copy_to_caller(c.arg0, &value, sizeof(T));
    return status(GODWIT_HC_OK);
}

Result cpu_list(const Call& c, HypercallHost& host) {
    if (c.arg2 != 0)
        return status(GODWIT_HC_BAD_ARGUMENT);
    if (c.arg1 < sizeof(godwit_hc_cpu) || c.arg1 > cpu_list_max)
        return status(GODWIT_HC_BAD_LENGTH);
    if (!host.caller_owns(c.arg0, c.arg1))
        return status(GODWIT_HC_BAD_ADDRESS);
    u32 count = host.cpu_count();
    u64 fits = c.arg1 / sizeof(godwit_hc_cpu);
    for (u32 i = 0; i < count && i < fits; ++i) {
        godwit_hc_cpu entry{};
        host.cpu(i, entry);
        host.copy_to_caller(c.arg0 + i * sizeof(godwit_hc_cpu), &entry, sizeof(entry));
    }
    return status(GODWIT_HC_OK, count);
}

Result console_read(const Call& c, HypercallHost& host) {
    constexpr u64 header = sizeof(godwit_hc_console_chunk);
    if (c.arg1 < header || c.arg1 > header + GODWIT_HC_CONSOLE_READ_MAX)
        return status(GODWIT_HC_BAD_LENGTH);
    if (!host.caller_owns(c.arg0, c.arg1))
        return status(GODWIT_HC_BAD_ADDRESS);
    const char* ring = nullptr;
    u64 size = 0, written = 0;
    host.console(ring, size, written);
    u64 oldest = written > size ? written - size : 0;
    u64 position = c.arg2;
    if (position > written)
        return status(GODWIT_HC_BAD_ARGUMENT); // a position from the future
    if (position < oldest)
        position = oldest; // overwritten already: start at the oldest byte held
    u64 length = written - position;
    if (length > c.arg1 - header)
        length = c.arg1 - header;
    godwit_hc_console_chunk chunk{position, written};
    host.copy_to_caller(c.arg0, &chunk, header);
    // The text may wrap around the end of the ring: at most two pieces.
    u64 copied = 0;
    while (copied < length) {
        u64 offset = (position + copied) % size;
        u64 piece = size - offset;
        if (piece > length - copied)
            piece = length - copied;
        host.copy_to_caller(c.arg0 + header + copied, ring + offset, piece);
        copied += piece;
    }
    return status(GODWIT_HC_OK, length);
}

Result partition_create(const Call& c, HypercallHost& host) {
    if (c.arg2 != 0)
        return status(GODWIT_HC_BAD_ARGUMENT);
    if (c.arg0 == 0 || (c.arg0 & (page_size - 1)) != 0 || c.arg0 > (4ull << 30) || c.arg1 == 0 ||
        c.arg1 > GODWIT_MAX_VCPUS)
        return status(GODWIT_HC_BAD_ARGUMENT);
    u32 id = 0;
    u64 s = host.partition_create(c.arg0, static_cast<u32>(c.arg1), id);
    return status(s, s == GODWIT_HC_OK ? id : 0);
}

Result partition_map(const Call& c, HypercallHost& host) {
    constexpr u64 header = sizeof(godwit_hc_map_frames);
    if (c.arg0 >= GODWIT_MAX_PARTITIONS)
        return status(GODWIT_HC_BAD_ARGUMENT);
    if (c.arg2 < header + sizeof(u64) || c.arg2 > header + GODWIT_MAX_MAP_FRAMES * sizeof(u64))
        return status(GODWIT_HC_BAD_LENGTH);
    if (!host.caller_owns(c.arg1, c.arg2))
        return status(GODWIT_HC_BAD_ADDRESS);
    // Copied once, then validated: the caller cannot change what was checked.
    godwit_hc_map_frames head{};
    host.copy_from_caller(c.arg1, &head, header);
    if (head.reserved != 0 || head.count == 0 || head.count > GODWIT_MAX_MAP_FRAMES ||
        (head.guest_gpa & (page_size - 1)) != 0)
        return status(GODWIT_HC_BAD_ARGUMENT);
    if (header + head.count * sizeof(u64) > c.arg2)
        return status(GODWIT_HC_BAD_LENGTH);
    u64 frames[GODWIT_MAX_MAP_FRAMES];
    host.copy_from_caller(c.arg1 + header, frames, head.count * sizeof(u64));
    for (u32 i = 0; i < head.count; ++i) {
        // Only the caller's own RAM can become guest RAM: never MMIO, never the hypervisor.
        if ((frames[i] & (page_size - 1)) != 0 || !host.caller_owns(frames[i], page_size))
            return status(GODWIT_HC_BAD_ADDRESS);
    }
    return status(host.partition_map(static_cast<u32>(c.arg0), head.guest_gpa, frames, head.count));
}

// The checks every vCPU (or, per_vcpu false, partition) struct call shares: arg0 = partition
// | vcpu << 32 in range (vcpu 0 for partition calls), arg1/arg2 a buffer of exactly `size`
// bytes in the caller's memory. GODWIT_HC_OK when they pass.
u64 check_vcpu_call(const Call& c, const HypercallHost& host, u64 size, u32& id, u32& vcpu,
                    bool per_vcpu = true) {
    id = static_cast<u32>(c.arg0);
    vcpu = static_cast<u32>(c.arg0 >> 32);
    if (id >= GODWIT_MAX_PARTITIONS || (per_vcpu ? vcpu >= GODWIT_MAX_VCPUS : vcpu != 0))
        return GODWIT_HC_BAD_ARGUMENT;
    if (c.arg2 != size)
        return GODWIT_HC_BAD_LENGTH;
    if (!host.caller_owns(c.arg1, c.arg2))
        return GODWIT_HC_BAD_ADDRESS;
    return GODWIT_HC_OK;
}

Result vcpu_set_state(const Call& c, HypercallHost& host) {
    u32 id = 0, vcpu = 0;
    if (u64 bad = check_vcpu_call(c, host, sizeof(godwit_hc_vcpu_state), id, vcpu))
        return status(bad);
    godwit_hc_vcpu_state state{};
    host.copy_from_caller(c.arg1, &state, sizeof(state));
    return status(host.vcpu_set_state(id, vcpu, state));
}

Result vcpu_get_state(const Call& c, HypercallHost& host) {
    u32 id = 0, vcpu = 0;
    if (u64 bad = check_vcpu_call(c, host, sizeof(godwit_hc_vcpu_state), id, vcpu))
        return status(bad);
    godwit_hc_vcpu_state state{};
    u64 s = host.vcpu_get_state(id, vcpu, state);
    if (s == GODWIT_HC_OK)
        host.copy_to_caller(c.arg1, &state, sizeof(state));
    return status(s);
}

Result vcpu_run(const Call& c, HypercallHost& host) {
    u32 id = 0, vcpu = 0;
    if (u64 bad = check_vcpu_call(c, host, sizeof(godwit_hc_vcpu_run), id, vcpu))
        return status(bad);
    godwit_hc_vcpu_run run{};
    host.copy_from_caller(c.arg1, &run, sizeof(run));
    if ((run.flags & ~(GODWIT_RUN_COMPLETE_READ | GODWIT_RUN_NO_ENTRY)) != 0 || run.reserved0 != 0)
        return status(GODWIT_HC_BAD_ARGUMENT);
    u64 s = host.vcpu_run(id, vcpu, run);
    if (s == GODWIT_HC_OK)
        host.copy_to_caller(c.arg1, &run, sizeof(run));
    return status(s);
}

Result dirty_log(const Call& c, HypercallHost& host) {
    if (c.arg0 >= GODWIT_MAX_PARTITIONS)
        return status(GODWIT_HC_BAD_ARGUMENT);
    u32 id = static_cast<u32>(c.arg0);
    if (c.arg1 == GODWIT_DIRTY_ENABLE || c.arg1 == GODWIT_DIRTY_DISABLE ||
        c.arg1 == GODWIT_DIRTY_ENABLE_WRITE_PROTECT) {
        if (c.arg2 != 0)
            return status(GODWIT_HC_BAD_ARGUMENT);
        return status(host.dirty_log(id, static_cast<u32>(c.arg1)));
    }
    if (c.arg1 != GODWIT_DIRTY_FETCH)
        return status(GODWIT_HC_BAD_ARGUMENT);
    constexpr u64 header = sizeof(godwit_hc_dirty_fetch);
    if (!host.caller_owns(c.arg2, header))
        return status(GODWIT_HC_BAD_ADDRESS);
    godwit_hc_dirty_fetch head{};
    host.copy_from_caller(c.arg2, &head, header);
    if (head.reserved != 0 || head.pages == 0 || head.pages % 64 != 0 ||
        head.pages > GODWIT_DIRTY_FETCH_MAX_PAGES || head.first_page % 64 != 0 ||
        head.first_page > (4ull << 30) / page_size)
        return status(GODWIT_HC_BAD_ARGUMENT);
    if (!host.caller_owns(c.arg2 + header, head.pages / 8))
        return status(GODWIT_HC_BAD_ADDRESS);
    return status(host.dirty_fetch(id, head.first_page, head.pages, c.arg2 + header));
}

Result vcpu_extra(const Call& c, HypercallHost& host, bool set) {
    u32 id = 0, vcpu = 0;
    if (u64 bad = check_vcpu_call(c, host, sizeof(godwit_hc_vcpu_extra), id, vcpu))
        return status(bad);
    godwit_hc_vcpu_extra extra{};
    if (set) {
        host.copy_from_caller(c.arg1, &extra, sizeof(extra));
        if (extra.format != GODWIT_VCPU_EXTRA_FORMAT || extra.reserved != 0 ||
            extra.mp_state > GODWIT_MP_WAIT_FOR_SIPI || extra.lapic_bytes > GODWIT_STATE_BLOB_BYTES)
            return status(GODWIT_HC_BAD_ARGUMENT);
        return status(host.vcpu_set_extra(id, vcpu, extra));
    }
    u64 s = host.vcpu_get_extra(id, vcpu, extra);
    if (s == GODWIT_HC_OK)
        host.copy_to_caller(c.arg1, &extra, sizeof(extra));
    return status(s);
}

Result vcpu_fpu(const Call& c, HypercallHost& host, bool set) {
    u32 id = 0, vcpu = 0;
    if (u64 bad = check_vcpu_call(c, host, sizeof(godwit_hc_vcpu_fpu), id, vcpu))
        return status(bad);
    godwit_hc_vcpu_fpu fpu{}; // 3 KiB of the 16 KiB stack (the map call takes 4 KiB)
    if (set) {
        host.copy_from_caller(c.arg1, &fpu, sizeof(fpu));
        bool reserved = false;
        for (u64 r : fpu.reserved)
            reserved = reserved || r != 0;
        if (fpu.format != GODWIT_FPU_FORMAT || reserved ||
            fpu.area_bytes < GODWIT_FPU_LEGACY_BYTES + GODWIT_FPU_HEADER_BYTES ||
            fpu.area_bytes > GODWIT_FPU_AREA_BYTES)
            return status(GODWIT_HC_BAD_ARGUMENT);
        return status(host.vcpu_set_fpu(id, vcpu, fpu));
    }
    u64 s = host.vcpu_get_fpu(id, vcpu, fpu);
    if (s == GODWIT_HC_OK)
        host.copy_to_caller(c.arg1, &fpu, sizeof(fpu));
    return status(s);
}

Result irqchip(const Call& c, HypercallHost& host, bool set) {
    u32 id = 0, unused = 0;
    if (u64 bad = check_vcpu_call(c, host, sizeof(godwit_hc_irqchip), id, unused, false))
        return status(bad);
    godwit_hc_irqchip chip{};
    if (set) {
        host.copy_from_caller(c.arg1, &chip, sizeof(chip));
        if (chip.format != GODWIT_IRQCHIP_FORMAT || chip.ioapic_bytes > GODWIT_STATE_BLOB_BYTES)
            return status(GODWIT_HC_BAD_ARGUMENT);
        return status(host.irqchip_set(id, chip));
    }
    u64 s = host.irqchip_get(id, chip);
    if (s == GODWIT_HC_OK)
        host.copy_to_caller(c.arg1, &chip, sizeof(chip));
    return status(s);
}

} // namespace

Result dispatch(const Call& c, HypercallHost& host) {
    if (!c.from_root || c.cpl != 0)
        return status(GODWIT_HC_DENIED);
    switch (c.number) {
    case GODWIT_HC_VERSION: {
        godwit_hc_version v{};
        host.version(v);
        return struct_out(c, host, v);
    }
    case GODWIT_HC_CPU_LIST:
        return cpu_list(c, host);
    case GODWIT_HC_MEMORY_STATS: {
        godwit_hc_memory_stats m{};
        host.memory_stats(m);
        return struct_out(c, host, m);
    }
    case GODWIT_HC_CONSOLE_READ:
        return console_read(c, host);
    case GODWIT_HC_PARTITION_CREATE:
        return partition_create(c, host);
    case GODWIT_HC_PARTITION_DESTROY:
        if (c.arg0 >= GODWIT_MAX_PARTITIONS || c.arg1 != 0 || c.arg2 != 0)
            return status(GODWIT_HC_BAD_ARGUMENT);
        return status(host.partition_destroy(static_cast<u32>(c.arg0)));
    case GODWIT_HC_PARTITION_MAP:
        return partition_map(c, host);
    case GODWIT_HC_VCPU_SET_STATE:
        return vcpu_set_state(c, host);
    case GODWIT_HC_VCPU_RUN:
        return vcpu_run(c, host);
    case GODWIT_HC_VCPU_GET_STATE:
        return vcpu_get_state(c, host);
    case GODWIT_HC_PARTITION_IRQ: {
        if (c.arg0 >= GODWIT_MAX_PARTITIONS || c.arg1 >= GODWIT_IOAPIC_PINS || c.arg2 > 1)
            return status(GODWIT_HC_BAD_ARGUMENT);
        u32 wake = 0;
        u64 s = host.partition_irq(static_cast<u32>(c.arg0), static_cast<u32>(c.arg1), c.arg2 != 0,
                                   wake);
        return status(s, s == GODWIT_HC_OK ? wake : 0);
    }
    case GODWIT_HC_DIRTY_LOG:
        return dirty_log(c, host);
    case GODWIT_HC_VCPU_GET_FPU:
    case GODWIT_HC_VCPU_SET_FPU:
        return vcpu_fpu(c, host, c.number == GODWIT_HC_VCPU_SET_FPU);
    case GODWIT_HC_VCPU_GET_EXTRA:
    case GODWIT_HC_VCPU_SET_EXTRA:
        return vcpu_extra(c, host, c.number == GODWIT_HC_VCPU_SET_EXTRA);
    case GODWIT_HC_IRQCHIP_GET:
    case GODWIT_HC_IRQCHIP_SET:
        return irqchip(c, host, c.number == GODWIT_HC_IRQCHIP_SET);
    default:
        return status(GODWIT_HC_UNKNOWN_CALL);
    }
}

} // namespace godwit::hv::hypercall
