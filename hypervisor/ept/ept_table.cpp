#include "ept/ept_table.hpp"

namespace godwit::hv::ept {
namespace {

constexpr u64 max_gpa = 1ull << 48;
constexpr u64 rights_mask = bits::read | bits::write | bits::execute;

constexpr u32 index_at(u64 gpa, u8 level) {
    return static_cast<u32>((gpa >> (12 + 9 * (level - 1))) & 511);
}
constexpr bool present(u64 e) {
    return (e & rights_mask) != 0;
}
constexpr bool is_leaf(u64 e, u8 level) {
    return level == 1 || (e & bits::large) != 0;
}

} // namespace

const char* to_string(Status s) {
    switch (s) {
    case Status::ok:
        return "ok";
    case Status::no_memory:
        return "out of memory for EPT tables";
    case Status::misaligned:
        return "address not aligned to the page size";
    case Status::out_of_range:
        return "guest-physical address out of range";
    case Status::not_mapped:
        return "not mapped";
    case Status::conflict:
        return "conflicts with an existing smaller mapping";
    }
    return "?";
}

Status EptTable::init() {
    root_ = memory_.allocate_table();
    if (root_ == 0)
        return Status::no_memory;
    tables_ = 1;
    return Status::ok;
}

void EptTable::free_subtree(u64 physical, u8 level) {
    u64* t = memory_.table(physical);
    if (level > 1) {
        for (u32 i = 0; i < 512; ++i) {
            if (present(t[i]) && !is_leaf(t[i], level))
                free_subtree(t[i] & bits::address_mask, level - 1);
        }
    }
    memory_.free_table(physical);
    --tables_;
}

void EptTable::destroy() {
    if (root_ != 0)
        free_subtree(root_, 4);
    root_ = 0;
}

// Replaces a large leaf at `level` (2 or 3) with a table of 512 leaves one level down that
// map the same memory with the same attributes.
Status EptTable::split(u64& entry, u8 level) {
    u64 table = memory_.allocate_table();
    if (table == 0)
        return Status::no_memory;
    ++tables_;
    u64* t = memory_.table(table);
    u64 base = entry & bits::address_mask & ~(bytes_of(static_cast<PageSize>(level)) - 1);
    u64 attributes = entry & ~bits::address_mask & ~bits::large;
    u64 child_size = bytes_of(static_cast<PageSize>(level - 1));
    for (u32 i = 0; i < 512; ++i) {
        t[i] = (base + i * child_size) | attributes | (level - 1 > 1 ? bits::large : 0);
    }
    entry = table | bits::read | bits::write | bits::execute;
    return Status::ok;
}

// Returns the entry at `level` for gpa, descending (and with `create`, allocating tables and
// splitting large pages) from the PML4.
u64* EptTable::walk_to(u64 gpa, u8 level, bool create, Status& status) {
    status = Status::ok;
    u64 table = root_;
    for (u8 l = 4; l > level; --l) {
        u64& e = memory_.table(table)[index_at(gpa, l)];
        if (!present(e)) {
            if (!create) {
                status = Status::not_mapped;
                return nullptr;
            }
            u64 next = memory_.allocate_table();
            if (next == 0) {
                status = Status::no_memory;
                return nullptr;
            }
            ++tables_;
            e = next | bits::read | bits::write | bits::execute;
        } else if (is_leaf(e, l)) {
            if (!create) {
                status = Status::not_mapped; // caller asked below a large leaf
                return nullptr;
            }
            status = split(e, l);
            if (status != Status::ok)
                return nullptr;
        }
        table = e & bits::address_mask;
    }
    return &memory_.table(table)[index_at(gpa, level)];
}

Status EptTable::map(u64 gpa, u64 hpa, PageSize size, u8 access, u8 memory_type) {
    u64 bytes = bytes_of(size);
    if ((gpa | hpa) & (bytes - 1))
        return Status::misaligned;
    if (gpa >= max_gpa || hpa >= max_gpa)
        return Status::out_of_range;
    u8 level = static_cast<u8>(size);
    Status status;
    u64* e = walk_to(gpa, level, true, status);
    if (e == nullptr)
        return status;
    if (present(*e) && !is_leaf(*e, level))
        return Status::conflict;
    *e = hpa | (access & rights_mask) | (u64{memory_type & 7u} << bits::memory_type_shift) |
         (level > 1 ? bits::large : 0);
    return Status::ok;
}

Status EptTable::unmap(u64 gpa) {
    if (gpa >= max_gpa)
        return Status::out_of_range;
    u64 hpa;
    u8 access;
    PageSize size;
    if (!translate(gpa, hpa, access, size))
        return Status::not_mapped;
    Status status;
    u64* e = walk_to(align_down(gpa, page_size), 1, true, status); // splits any large page
    if (e == nullptr)
        return status;
    *e = 0;
    return Status::ok;
}

Status EptTable::protect(u64 gpa, u64 length, u8 access) {
    if (gpa + length < gpa || gpa + length > max_gpa)
        return Status::out_of_range;
    u64 end = align_up(gpa + length, page_size);
    for (u64 a = align_down(gpa, page_size); a < end;) {
        u64 hpa;
        u8 old;
        PageSize size;
        if (!translate(a, hpa, old, size)) {
            a += page_size;
            continue;
        }
        u64 bytes = bytes_of(size);
        u64 page_start = align_down(a, bytes);
        // A large page wholly inside the range keeps its size; one straddling an edge splits.
        u8 level = static_cast<u8>(size);
        if (size != PageSize::size_4k &&
            (page_start < align_down(gpa, page_size) || page_start + bytes > end)) {
            level = 1;
            bytes = page_size;
            page_start = a;
        }
        Status status;
        u64* e = walk_to(page_start, level, true, status);
        if (e == nullptr)
            return status;
        *e = (*e & ~rights_mask) | (access & rights_mask);
        if ((access & rights_mask) == 0)
            *e = 0; // no access at all: not present
        a = page_start + bytes;
    }
    return Status::ok;
}

Status EptTable::clear_dirty(u64 gpa, u64 length) {
    if (gpa + length < gpa || gpa + length > max_gpa)
        return Status::out_of_range;
    u64 end = align_up(gpa + length, page_size);
    for (u64 a = align_down(gpa, page_size); a < end; a += page_size) {
        u64 hpa;
        u8 access;
        PageSize size;
        if (!translate(a, hpa, access, size))
            continue;
        Status status;
        u64* e = walk_to(a, 1, true, status); // splits a large leaf into 4 KiB ones
        if (e == nullptr)
            return status;
        *e &= ~bits::dirty;
    }
    return Status::ok;
}

bool EptTable::translate(u64 gpa, u64& hpa, u8& access, PageSize& size) const {
    if (gpa >= max_gpa || root_ == 0)
        return false;
    u64 table = root_;
    for (u8 l = 4; l >= 1; --l) {
        u64 e = memory_.table(table)[index_at(gpa, l)];
        if (!present(e))
            return false;
        if (is_leaf(e, l)) {
            u64 bytes = bytes_of(static_cast<PageSize>(l));
            hpa = (e & bits::address_mask & ~(bytes - 1)) + (gpa & (bytes - 1));
            access = static_cast<u8>(e & rights_mask);
            size = static_cast<PageSize>(l);
            return true;
        }
        table = e & bits::address_mask;
    }
    return false;
}

u64* EptTable::leaf_entry(u64 gpa) const {
    if (gpa >= max_gpa || root_ == 0)
        return nullptr;
    u64 table = root_;
    for (u8 l = 4; l >= 1; --l) {
        u64* e = &memory_.table(table)[index_at(gpa, l)];
        if (!present(*e))
            return nullptr;
        if (is_leaf(*e, l))
            return e;
        table = *e & bits::address_mask;
    }
    return nullptr;
}

} // namespace godwit::hv::ept
