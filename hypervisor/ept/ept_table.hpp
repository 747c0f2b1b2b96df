// Extended page tables (Intel SDM Vol. 3C, 29.3 "The Extended Page Table Mechanism"):
// 4-level tables mapping guest-physical to host-physical addresses with 4 KiB, 2 MiB and
// 1 GiB pages; map, unmap and protect split large pages where needed.
//
// Page-table policy over a memory backend (as in Hedron): the table code never touches
// physical memory directly but asks TableMemory for table pages, so host unit tests run the
// real code over a fake physical memory.
#pragma once

#include "lib/types.hpp"

namespace godwit::hv::ept {

inline constexpr u8 access_read = 1, access_write = 2, access_execute = 4;
inline constexpr u8 access_rwx = access_read | access_write | access_execute;

inline constexpr u8 memory_type_uc = 0, memory_type_wc = 1, memory_type_wt = 4, memory_type_wp = 5,
                    memory_type_wb = 6;

enum class PageSize : u8 { size_4k = 1, size_2m = 2, size_1g = 3 }; // = leaf level
constexpr u64 bytes_of(PageSize s) {
    return 1ull << (12 + 9 * (static_cast<u8>(s) - 1));
}

// EPT entry bits (Table 29-1 ... 29-6).
namespace bits {
inline constexpr u64 read = 1ull << 0, write = 1ull << 1, execute = 1ull << 2;
inline constexpr u64 memory_type_shift = 3;
inline constexpr u64 ignore_pat = 1ull << 6;
inline constexpr u64 large = 1ull << 7;
inline constexpr u64 accessed = 1ull << 8;
inline constexpr u64 dirty = 1ull << 9;
inline constexpr u64 address_mask = 0x000FFFFFFFFFF000ull;
} // namespace bits

class TableMemory {
  public:
    // A zeroed 4 KiB page for a table: its host-physical address, or 0 when out of memory.
    virtual u64 allocate_table() = 0;
    virtual void free_table(u64 physical) = 0;
    // The 512 entries of the table at `physical`.
    virtual u64* table(u64 physical) = 0;

  protected:
    ~TableMemory() = default;
};

enum class Status : u8 {
    ok,
    no_memory,
    misaligned,   // gpa/hpa not aligned to the page size
    out_of_range, // beyond the 48-bit guest-physical space
    not_mapped,
    conflict, // a larger mapping over existing smaller tables
};

const char* to_string(Status s);

class EptTable {
  public:
    explicit EptTable(TableMemory& memory) : memory_(memory) {}
    Status init();  // allocates the PML4
    void destroy(); // frees every table (not the mapped frames)

    u64 root() const { return root_; }
    // EPTP: write-back paging structures, 4-level walk, A/D flags when asked (29.3.5 / 25.6.11).
    u64 eptp(bool accessed_dirty) const {
        return root_ | memory_type_wb | (3ull << 3) | (accessed_dirty ? 1ull << 6 : 0);
    }

    Status map(u64 gpa, u64 hpa, PageSize size, u8 access, u8 memory_type);
    // Removes the translation of the 4 KiB page at gpa (splitting a large page around it).
    Status unmap(u64 gpa);
    // Sets the access rights of every mapped 4 KiB page in [gpa, gpa+length), splitting large
    // pages that straddle the range. Unmapped parts are skipped.
    Status protect(u64 gpa, u64 length, u8 access);
    // Clears the dirty flag (EPT A/D, 29.3.5) of every mapped page in [gpa, gpa+length), as
    // 4 KiB leaves: a large page in the range is split first, since one dirty flag for all its
    // 4 KiB pages would let PML log only the first write to any of them. Unmapped parts are
    // skipped. The caller flushes cached translations (INVEPT) before the guest runs again.
    Status clear_dirty(u64 gpa, u64 length);
    // Translation of gpa: host-physical address, rights, leaf size. False when unmapped.
    bool translate(u64 gpa, u64& hpa, u8& access, PageSize& size) const;
    // The leaf entry mapping gpa (for accessed/dirty flags), or nullptr.
    u64* leaf_entry(u64 gpa) const;

    u64 tables_in_use() const { return tables_; }

  private:
    u64* walk_to(u64 gpa, u8 level, bool create, Status& status);
    Status split(u64& entry, u8 level);
    void free_subtree(u64 physical, u8 level);

    TableMemory& memory_;
    u64 root_ = 0;
    u64 tables_ = 0;
};

} // namespace godwit::hv::ept
