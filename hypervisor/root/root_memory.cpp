#include "root/root_memory.hpp"

namespace godwit::hv::root {
namespace {

struct Planner {
    ept::EptTable& ept;
    const MtrrState& mtrrs;
    const Range* hidden;
    u32 hidden_count;
    IdentityMapStats& stats;

    // 0 = no overlap, 1 = partial, 2 = the block lies inside one hidden range.
    int overlap(u64 base, u64 size) const {
        int result = 0;
        for (u32 i = 0; i < hidden_count; ++i) {
            const Range& h = hidden[i];
            if (h.size == 0 || base >= h.end() || base + size <= h.base)
                continue;
            if (base >= h.base && base + size <= h.end())
                return 2;
            result = 1;
        }
        return result;
    }

    ept::Status map_block(u64 base, ept::PageSize size, ept::PageSize largest) {
        u64 bytes = ept::bytes_of(size);
        int hidden_overlap = overlap(base, bytes);
        if (hidden_overlap == 2) {
            stats.hidden_bytes += bytes;
            return ept::Status::ok;
        }
        u8 type = size == ept::PageSize::size_4k ? mtrr_type_of(mtrrs, base)
                                                 : mtrr_type_of_block(mtrrs, base, bytes);
        bool fits = hidden_overlap == 0 && type != mtrr_mixed && size <= largest;
        if (fits || size == ept::PageSize::size_4k) {
            ept::Status st = ept.map(base, base, size, ept::access_rwx, type);
            if (st != ept::Status::ok)
                return st;
            (size == ept::PageSize::size_1g   ? stats.pages_1g
             : size == ept::PageSize::size_2m ? stats.pages_2m
                                              : stats.pages_4k) += 1;
            return ept::Status::ok;
        }
        auto smaller = static_cast<ept::PageSize>(static_cast<u8>(size) - 1);
        u64 step = ept::bytes_of(smaller);
        for (u64 a = base; a < base + bytes; a += step) {
            ept::Status st = map_block(a, smaller, largest);
            if (st != ept::Status::ok)
                return st;
        }
        return ept::Status::ok;
    }
};

} // namespace

ept::Status map_identity(ept::EptTable& ept, const MtrrState& mtrrs, u64 top, const Range* hidden,
                         u32 hidden_count, ept::PageSize largest, IdentityMapStats& stats) {
    stats = IdentityMapStats{};
    if ((top & (page_size - 1)) != 0)
        return ept::Status::misaligned;
    for (u32 i = 0; i < hidden_count; ++i) {
        if (((hidden[i].base | hidden[i].size) & (page_size - 1)) != 0)
            return ept::Status::misaligned;
    }
    Planner p{ept, mtrrs, hidden, hidden_count, stats};
    // Walk [0, top) in the largest aligned blocks that fit, each planned recursively.
    for (u64 a = 0; a < top;) {
        ept::PageSize size = ept::PageSize::size_1g;
        while (size != ept::PageSize::size_4k &&
               ((a & (ept::bytes_of(size) - 1)) != 0 || a + ept::bytes_of(size) > top))
            size = static_cast<ept::PageSize>(static_cast<u8>(size) - 1);
        ept::Status st = p.map_block(a, size, largest);
        if (st != ept::Status::ok)
            return st;
        a += ept::bytes_of(size);
    }
    return ept::Status::ok;
}

u64 place_high(const Range* ram, u32 ram_count, const Range* avoid, u32 avoid_count, u64 size,
               u64 limit) {
    u64 best = 0;
    if (size == 0)
        return 0;
    for (u32 r = 0; r < ram_count; ++r) {
        u64 top = ram[r].end() < limit ? ram[r].end() : limit;
        // Slide down below every avoid range the candidate hits; each step lowers `top`.
        for (bool moved = true; moved;) {
            moved = false;
            if (top < ram[r].base + size || top < size)
                break;
            u64 a = align_down(top - size, page_size);
            if (a < ram[r].base)
                break;
            for (u32 i = 0; i < avoid_count; ++i) {
                if (avoid[i].size != 0 && a < avoid[i].end() && a + size > avoid[i].base) {
                    top = avoid[i].base;
                    moved = true;
                    break;
                }
            }
            if (!moved && a > best)
                best = a;
        }
    }
    return best;
}

bool buffer_in_ram(const linux_boot::E820Entry* e820, u32 count, u64 gpa, u64 length) {
    if (length == 0 || gpa + length < gpa)
        return false;
    for (u32 i = 0; i < count; ++i) {
        if (e820[i].type != static_cast<u32>(linux_boot::E820Type::ram))
            continue;
        if (gpa >= e820[i].addr && gpa + length <= e820[i].addr + e820[i].size)
            return true;
    }
    return false;
}

} // namespace godwit::hv::root
