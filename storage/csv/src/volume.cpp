#include "godwit/csv/volume.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "godwit/csv/allocator.hpp"
#include "godwit/csv/journal.hpp"
#include "godwit/csv/shared_blocks.hpp"
#include "godwit/error.hpp"

namespace godwit::csv {
namespace {

constexpr std::uint64_t kMaxExtentLength = 1u << 30; // blocks per extent (4 TiB)
constexpr std::size_t kIoChunk = 1 << 20;            // bytes per data I/O
// A write to shared blocks copies at least this many file blocks (1 MiB, aligned), so a
// stream of small writes after a snapshot does not ask for a copy each time.
constexpr std::uint64_t kCopyGranule = 256;
// A file copied sequentially (a VM rewriting its disk after a backup snapshot) gets a copy
// window that doubles with each request that continues the previous one, up to 16 MiB, so
// a stream of writes does not pay a coordinator round trip and three flushes per MiB.
constexpr std::uint64_t kMaxCopyWindow = 4096;
constexpr std::size_t kMaxSnapshots = 64;
constexpr std::size_t kMaxSnapshotName = 64;

bool has_flag(const Inode& inode, std::uint16_t flags) {
    return (inode.flags & flags) != 0;
}

// A transaction exceeded the journal: the caller retries with a smaller step.
struct TransactionTooLarge : Error {
    TransactionTooLarge() : Error(ErrorCode::internal, "transaction exceeds the journal") {}
};
// A resize must first copy the shared file block `block` (it zeroes part of it).
struct NeedsCopy {
    std::uint64_t block;
};

std::vector<std::string> split_path(std::string_view path) {
    std::vector<std::string> parts;
    std::size_t i = 0;
    while (i < path.size()) {
        std::size_t j = path.find('/', i);
        if (j == std::string_view::npos) {
            j = path.size();
        }
        if (j > i) {
            std::string part(path.substr(i, j - i));
            if (!valid_name(part)) {
                throw Error(ErrorCode::usage,
                            "invalid name '" + part + "' in path " + std::string(path));
            }
            parts.push_back(std::move(part));
        }
        i = j + 1;
    }
    return parts;
}

std::uint64_t blocks_for(std::uint64_t bytes) {
    return (bytes + kBlockSize - 1) / kBlockSize;
}

// Bounce buffer for a data transfer: whole blocks around it, at most kIoChunk.
std::size_t io_buffer_size(std::uint64_t offset, std::uint64_t length) {
    return static_cast<std::size_t>(
        std::min<std::uint64_t>(blocks_for(offset % kBlockSize + length) * kBlockSize, kIoChunk));
}

bool bit(const BitmapBlock& b, std::uint64_t i) {
    return (b.bits[i / 8] >> (i % 8)) & 1u;
}

} // namespace

struct Volume::State {
    BlockDevice& raw;
    // Every write of a coordinator passes the fence first (docs/csv-format.md §4): it is
    // made only while the lease is known to be ours, i.e. within half a lease duration of
    // the last heartbeat that found it ours; past that the write heartbeats first, which
    // throws FencedError once another node took the lease.
    struct FencedWrites final : BlockDevice {
        State& s;
        explicit FencedWrites(State& st) : s(st) {}
        void read(std::uint64_t offset, std::span<std::byte> out) override {
            s.raw.read(offset, out);
        }
        void write(std::uint64_t offset, std::span<const std::byte> in) override {
            s.fence();
            s.raw.write(offset, in);
        }
        void flush() override { s.raw.flush(); }
        std::uint64_t size() const override { return s.raw.size(); }
    } guarded{*this};
    BlockDevice& device; // `guarded`: every metadata and data write of this volume
    std::chrono::steady_clock::time_point lease_fresh_at{}; // before the last good heartbeat
    MountOptions options;
    Superblock sb{}; // as of the last commit
    JournalLayout journal;
    std::unordered_map<std::uint64_t, Block> cache; // committed metadata blocks
    ExtentAllocator allocator;
    SharedBlocks shared; // data blocks referenced by several files (snapshots), §12
    struct CopyStream {
        std::uint64_t generation = 0;
        std::uint64_t next = 0;   // file block after the last copy
        std::uint64_t window = 0; // blocks
    };
    std::unordered_map<std::uint64_t, CopyStream> copy_streams; // by inode
    AlignedBuffer scratch; // data I/O bounce buffer, kept between calls

    std::byte* scratch_buffer(std::size_t size) {
        if (scratch.size() < size) {
            scratch = AlignedBuffer(size);
        }
        return scratch.data();
    }
    std::set<std::uint64_t> free_inodes;
    std::uint64_t last_seq = 0;
    std::uint64_t replayed = 0;
    std::uint64_t lease_generation = 0;
    bool mounted = true;
    bool broken = false; // an I/O error during a commit: only a remount may continue
    bool fenced = false; // a write found the lease taken
    std::uint64_t next_handle = 1;
    std::map<std::uint64_t, FileHandle> handles;
    std::map<std::uint64_t, std::uint32_t> open_counts;

    explicit State(BlockDevice& d) : raw(d), device(guarded) {}

    void heartbeat() {
        const auto before = std::chrono::steady_clock::now();
        try {
            heartbeat_lease(raw, sb.lease_block, options.identity, lease_generation);
        } catch (const FencedError&) {
            fenced = true;
            throw;
        }
        lease_fresh_at = before;
    }
    void fence() {
        if (options.read_only || lease_generation == 0) {
            return; // mounting: the lease was just acquired, the replay runs on `raw`
        }
        if (fenced) {
            throw FencedError("this node lost the coordinator lease: writes are fenced");
        }
        if (std::chrono::steady_clock::now() - lease_fresh_at >=
            std::chrono::milliseconds(options.lease.lease_duration_ms / 2)) {
            heartbeat();
        }
    }

    struct Txn {
        std::map<std::uint64_t, Block> dirty;
        bool data_written = false;         // zeroed data blocks must be durable before the commit
        std::optional<Superblock> sb_next; // a change of the superblock's static fields
    };

    // ---- blocks
    const Block& cached(std::uint64_t b, BlockKind kind) {
        auto it = cache.find(b);
        if (it != cache.end()) {
            if (header_of(it->second).kind != static_cast<std::uint16_t>(kind)) {
                throw Error(ErrorCode::invalid_input, "block " + std::to_string(b) + " is not a " +
                                                          std::string(to_string(kind)) + " block");
            }
            return it->second;
        }
        if (b >= sb.total_blocks) {
            throw Error(ErrorCode::invalid_input,
                        "metadata pointer to block " + std::to_string(b) + " beyond the volume");
        }
        Block block = read_block(device, b);
        validate_block(block, kind, b);
        return cache.emplace(b, block).first->second;
    }
    const Block& view(Txn* t, std::uint64_t b, BlockKind kind) {
        if (t != nullptr) {
            auto it = t->dirty.find(b);
            if (it != t->dirty.end()) {
                return it->second;
            }
        }
        return cached(b, kind);
    }
    Block& modify(Txn& t, std::uint64_t b, BlockKind kind) {
        auto it = t.dirty.find(b);
        if (it != t.dirty.end()) {
            return it->second;
        }
        Block copy = cached(b, kind);
        return t.dirty.emplace(b, copy).first->second;
    }
    Block& fresh(Txn& t, std::uint64_t b, BlockKind kind) {
        Block block{};
        seal_block(block, kind, b, 0);
        return t.dirty.insert_or_assign(b, block).first->second;
    }

    // ---- inodes
    void check_inode_number(std::uint64_t ino) const {
        if (ino == 0 || ino >= sb.inode_count) {
            throw Error(ErrorCode::invalid_input,
                        "inode number " + std::to_string(ino) + " out of range");
        }
    }
    std::uint64_t inode_block(std::uint64_t ino) const {
        return sb.inode_table_start + ino / kInodesPerBlock;
    }
    Inode get_inode(Txn* t, std::uint64_t ino) {
        check_inode_number(ino);
        auto table = load<InodeTableBlock>(view(t, inode_block(ino), BlockKind::inode_table));
        Inode inode = table.inodes[ino % kInodesPerBlock];
        if (inode.type > static_cast<std::uint16_t>(InodeType::directory)) {
            throw Error(ErrorCode::invalid_input,
                        "inode " + std::to_string(ino) + ": unknown type");
        }
        return inode;
    }
    void put_inode(Txn& t, std::uint64_t ino, const Inode& inode) {
        Block& block = modify(t, inode_block(ino), BlockKind::inode_table);
        std::memcpy(block.data() + offsetof(InodeTableBlock, inodes) +
                        (ino % kInodesPerBlock) * sizeof(Inode),
                    &inode, sizeof(Inode));
    }

    // ---- bitmap
    void set_bits(Txn& t, std::uint64_t start, std::uint64_t length, bool value) {
        for (std::uint64_t b = start; b < start + length; ++b) {
            const std::uint64_t k = b / kBitsPerBitmapBlock;
            const std::uint64_t i = b % kBitsPerBitmapBlock;
            Block& block = modify(t, sb.bitmap_start + k, BlockKind::bitmap);
            auto* byte =
                reinterpret_cast<std::uint8_t*>(block.data() + offsetof(BitmapBlock, bits) + i / 8);
            const auto mask = static_cast<std::uint8_t>(1u << (i % 8));
            if (((*byte & mask) != 0) == value) {
                throw Error(ErrorCode::internal, "bitmap: block " + std::to_string(b) +
                                                     " already " + (value ? "allocated" : "free"));
            }
            *byte = value ? static_cast<std::uint8_t>(*byte | mask)
                          : static_cast<std::uint8_t>(*byte & ~mask);
        }
    }
    std::vector<Run> allocate(Txn& t, std::uint64_t count, std::uint64_t goal) {
        auto runs = allocator.allocate(count, goal);
        for (const Run& r : runs) {
            set_bits(t, r.start, r.length, true);
        }
        return runs;
    }
    void release(Txn& t, std::uint64_t start, std::uint64_t length) {
        set_bits(t, start, length, false);
        allocator.release(start, length);
    }
    // A file lets go of its data blocks: only those no other file references are freed.
    void release_data(Txn& t, std::uint64_t start, std::uint64_t length) {
        if (shared.empty()) {
            release(t, start, length);
            return;
        }
        for (const Run& r : shared.drop(start, length)) {
            release(t, r.start, r.length);
        }
    }

    // Rebuilds the in-memory indexes from the committed blocks (after an aborted change).
    void rebuild_indexes() {
        allocator.clear();
        for (std::uint64_t k = 0; k < sb.bitmap_blocks; ++k) {
            auto bm = load<BitmapBlock>(cached(sb.bitmap_start + k, BlockKind::bitmap));
            if (bm.first_block != k * kBitsPerBitmapBlock ||
                bm.bit_count != std::min<std::uint64_t>(kBitsPerBitmapBlock,
                                                        sb.total_blocks - bm.first_block)) {
                throw Error(ErrorCode::invalid_input,
                            "bitmap block " + std::to_string(k) + ": wrong coverage");
            }
            std::uint64_t run_start = 0;
            std::uint64_t run_length = 0;
            for (std::uint32_t i = 0; i < bm.bit_count; ++i) {
                const std::uint64_t b = bm.first_block + i;
                const bool used = bit(bm, i);
                const bool metadata_area = b < sb.data_start || b >= sb.data_end;
                if (metadata_area && !used) {
                    throw Error(ErrorCode::invalid_input, "bitmap: fixed metadata block " +
                                                              std::to_string(b) + " marked free");
                }
                if (!used) {
                    if (run_length == 0) {
                        run_start = b;
                    }
                    ++run_length;
                } else if (run_length > 0) {
                    allocator.release(run_start, run_length);
                    run_length = 0;
                }
            }
            if (run_length > 0) {
                allocator.release(run_start, run_length);
            }
        }
        free_inodes.clear();
        shared.clear();
        const bool snapshots = (sb.incompat_features & kIncompatSnapshots) != 0;
        std::vector<Run> references; // every file's data blocks, when they may be shared
        for (std::uint64_t ino = 1; ino < sb.inode_count; ++ino) {
            const Inode inode = get_inode(nullptr, ino);
            if (inode.type == static_cast<std::uint16_t>(InodeType::free)) {
                free_inodes.insert(ino);
            } else if (snapshots && inode.type == static_cast<std::uint16_t>(InodeType::file)) {
                for (const Extent& e : load_extents(nullptr, ino, inode)) {
                    references.push_back({e.physical, e.length});
                }
            }
        }
        if (snapshots) {
            shared = SharedBlocks::from_references(references);
        }
    }

    // ---- extents
    std::vector<Extent> load_extents(Txn* t, std::uint64_t ino, const Inode& inode,
                                     std::vector<std::uint64_t>* chain = nullptr) {
        std::vector<Extent> extents;
        const std::uint32_t count = inode.extent_count;
        const std::uint64_t data_blocks = sb.data_end - sb.data_start;
        // Bounds first: every extent holds at least one block of the data area.
        if (inode.allocated_blocks > data_blocks || count > inode.allocated_blocks ||
            inode.size > inode.allocated_blocks * kBlockSize) {
            throw Error(ErrorCode::invalid_input, "inode " + std::to_string(ino) +
                                                      ": size or extent count exceeds the volume");
        }
        const std::uint64_t max_chain = (count + kExtentsPerMapBlock - 1) / kExtentsPerMapBlock;
        for (std::uint32_t i = 0; i < std::min<std::uint32_t>(count, kInlineExtents); ++i) {
            extents.push_back(inode.extents[i]);
        }
        std::uint64_t next = inode.extent_block;
        std::uint64_t hops = 0;
        while (extents.size() < count) {
            if (next == 0 || ++hops > max_chain || next < sb.data_start || next >= sb.data_end) {
                throw Error(ErrorCode::invalid_input,
                            "inode " + std::to_string(ino) + ": broken extent-map chain");
            }
            auto map = load<ExtentMapBlock>(view(t, next, BlockKind::extent_map));
            if (map.owner_inode != ino || map.count == 0 || map.count > kExtentsPerMapBlock ||
                map.count > count - extents.size()) {
                throw Error(ErrorCode::invalid_input,
                            "inode " + std::to_string(ino) + ": extent-map block " +
                                std::to_string(next) + " is inconsistent");
            }
            if (chain != nullptr) {
                chain->push_back(next);
            }
            for (std::uint32_t i = 0; i < map.count; ++i) {
                extents.push_back(map.extents[i]);
            }
            next = map.next_block;
        }
        if (next != 0 && count > kInlineExtents) {
            throw Error(ErrorCode::invalid_input, "inode " + std::to_string(ino) +
                                                      ": extent-map chain longer than its count");
        }
        std::uint64_t logical = 0;
        for (const Extent& e : extents) {
            if (e.length == 0 || e.logical != logical || e.physical < sb.data_start ||
                e.physical > sb.data_end || e.length > sb.data_end - e.physical) {
                throw Error(ErrorCode::invalid_input,
                            "inode " + std::to_string(ino) + ": extent outside the data area");
            }
            logical += e.length;
        }
        if (logical != inode.allocated_blocks) {
            throw Error(ErrorCode::invalid_input,
                        "inode " + std::to_string(ino) + ": extents do not match its block count");
        }
        return extents;
    }

    void store_extents(Txn& t, std::uint64_t ino, Inode& inode,
                       const std::vector<Extent>& extents) {
        std::vector<std::uint64_t> chain;
        const Inode old = get_inode(&t, ino); // as stored: its chain is the one to reuse
        load_extents(&t, ino, old, &chain);
        const std::size_t overflow =
            extents.size() > kInlineExtents ? extents.size() - kInlineExtents : 0;
        const std::size_t needed = (overflow + kExtentsPerMapBlock - 1) / kExtentsPerMapBlock;
        while (chain.size() > needed) {
            release(t, chain.back(), 1);
            t.dirty.erase(chain.back());
            chain.pop_back();
        }
        std::vector<bool> is_new(chain.size(), false);
        while (chain.size() < needed) {
            std::uint64_t goal = chain.empty() ? 0 : chain.back() + 1;
            chain.push_back(allocate(t, 1, goal).front().start);
            is_new.push_back(true);
        }
        inode.extents = {};
        for (std::size_t i = 0; i < std::min(extents.size(), kInlineExtents); ++i) {
            inode.extents[i] = extents[i];
        }
        inode.extent_count = static_cast<std::uint32_t>(extents.size());
        inode.extent_block = chain.empty() ? 0 : chain.front();
        for (std::size_t c = 0; c < chain.size(); ++c) {
            ExtentMapBlock map{};
            map.owner_inode = ino;
            map.next_block = c + 1 < chain.size() ? chain[c + 1] : 0;
            const std::size_t first = kInlineExtents + c * kExtentsPerMapBlock;
            const std::size_t n = std::min(kExtentsPerMapBlock, extents.size() - first);
            map.count = static_cast<std::uint32_t>(n);
            std::copy_n(extents.begin() + static_cast<std::ptrdiff_t>(first), n,
                        map.extents.begin());
            Block content{};
            store(content, map);
            if (!is_new[c]) {
                // Rewrite only the chain blocks whose extents changed.
                const Block& old = view(&t, chain[c], BlockKind::extent_map);
                if (std::memcmp(old.data() + sizeof(BlockHeader),
                                content.data() + sizeof(BlockHeader), kPayloadSize) == 0) {
                    continue;
                }
            }
            Block& block = is_new[c] ? fresh(t, chain[c], BlockKind::extent_map)
                                     : modify(t, chain[c], BlockKind::extent_map);
            std::memcpy(block.data() + sizeof(BlockHeader), content.data() + sizeof(BlockHeader),
                        kPayloadSize);
        }
    }

    // Physical block of file block `logical` (extents are sorted and contiguous).
    static std::uint64_t physical_of(const std::vector<Extent>& extents, std::uint64_t logical) {
        auto it = std::upper_bound(extents.begin(), extents.end(), logical,
                                   [](std::uint64_t l, const Extent& e) { return l < e.logical; });
        --it;
        return it->physical + (logical - it->logical);
    }

    void zero_runs(const std::vector<Run>& runs) {
        std::uint64_t largest = 0;
        for (const Run& r : runs) {
            largest = std::max(largest, r.length * kBlockSize);
        }
        AlignedBuffer zeros(static_cast<std::size_t>(std::min<std::uint64_t>(largest, kIoChunk)));
        for (const Run& r : runs) {
            std::uint64_t offset = r.start * kBlockSize;
            std::uint64_t left = r.length * kBlockSize;
            while (left > 0) {
                std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, kIoChunk));
                device.write(offset, zeros.span().first(n));
                offset += n;
                left -= n;
            }
        }
    }

    // Grows or shrinks the allocation of `ino` to `target` blocks within transaction t.
    void set_allocation(Txn& t, std::uint64_t ino, Inode& inode, std::uint64_t target,
                        bool zero_data) {
        auto extents = load_extents(&t, ino, inode);
        std::uint64_t have = inode.allocated_blocks;
        if (target > have) {
            std::uint64_t goal =
                extents.empty() ? 0 : extents.back().physical + extents.back().length;
            auto runs = allocate(t, target - have, goal);
            if (zero_data) {
                zero_runs(runs);
                t.data_written = true;
            }
            for (const Run& r : runs) {
                std::uint64_t start = r.start;
                std::uint64_t left = r.length;
                while (left > 0) {
                    if (!extents.empty() &&
                        extents.back().physical + extents.back().length == start &&
                        extents.back().length < kMaxExtentLength) {
                        auto n =
                            std::min<std::uint64_t>(left, kMaxExtentLength - extents.back().length);
                        extents.back().length += static_cast<std::uint32_t>(n);
                        start += n;
                        left -= n;
                        have += n;
                        continue;
                    }
                    auto n = std::min<std::uint64_t>(left, kMaxExtentLength);
                    extents.push_back({have, start, static_cast<std::uint32_t>(n), 0});
                    start += n;
                    left -= n;
                    have += n;
                }
            }
        } else {
            while (have > target) {
                Extent& last = extents.back();
                std::uint64_t cut = std::min<std::uint64_t>(last.length, have - target);
                release_data(t, last.physical + last.length - cut, cut);
                last.length -= static_cast<std::uint32_t>(cut);
                have -= cut;
                if (last.length == 0) {
                    extents.pop_back();
                }
            }
        }
        inode.allocated_blocks = target;
        store_extents(t, ino, inode, extents);
    }

    // ---- transactions
    void check_writable() const {
        if (!mounted) {
            throw Error(ErrorCode::conflict, "the volume is not mounted");
        }
        if (options.read_only) {
            throw Error(ErrorCode::conflict, "the volume is mounted read-only");
        }
        if (fenced) {
            throw FencedError("this node lost the coordinator lease: metadata writes are fenced");
        }
        if (broken) {
            throw Error(ErrorCode::io,
                        "an earlier commit failed: remount the volume to replay its journal");
        }
    }

    void commit(Txn& t) {
        if (t.dirty.empty() && !t.sb_next) {
            return;
        }
        Superblock next = t.sb_next.value_or(sb);
        next.free_blocks = allocator.free_blocks();
        next.free_inodes = free_inodes.size();
        Block& sb_block = modify(t, 0, BlockKind::superblock);
        std::memcpy(sb_block.data() + sizeof(BlockHeader),
                    reinterpret_cast<const std::byte*>(&next) + sizeof(BlockHeader),
                    sizeof(Superblock) - sizeof(BlockHeader));
        if (t.dirty.size() > journal.capacity()) {
            throw TransactionTooLarge();
        }
        // The fence: a coordinator that lost its lease must not write metadata.
        verify_lease(device, sb.lease_block, options.identity, lease_generation);
        const std::uint64_t seq = last_seq + 1;
        JournalTransaction jt;
        jt.seq = seq;
        for (auto& [b, block] : t.dirty) {
            BlockHeader h = header_of(block);
            h.txn_seq = seq;
            store(block, h);
            reseal_block(block);
            jt.blocks.emplace(b, block);
        }
        try {
            if (t.data_written) {
                device.flush();
            }
            journal_commit(device, journal, jt);
        } catch (const FencedError&) {
            broken = fenced = true; // another node coordinates now: never write again
            throw;
        } catch (...) {
            broken = true;
            throw;
        }
        last_seq = seq;
        for (auto& [b, block] : jt.blocks) {
            cache[b] = block;
        }
        sb = load<Superblock>(cache.at(0));
    }

    template <typename F>
    auto mutate(F&& body) {
        check_writable();
        Txn t;
        try {
            if constexpr (std::is_void_v<decltype(body(t))>) {
                body(t);
                commit(t);
            } else {
                auto result = body(t);
                commit(t);
                return result;
            }
        } catch (...) {
            if (!broken) {
                rebuild_indexes();
            }
            throw;
        }
    }

    // ---- directories
    struct Slot {
        std::uint64_t block = 0;
        std::size_t index = 0;
        DirectoryEntry entry{};
    };

    std::vector<std::uint64_t> directory_blocks(Txn* t, std::uint64_t ino, const Inode& inode) {
        std::vector<std::uint64_t> blocks;
        for (const Extent& e : load_extents(t, ino, inode)) {
            for (std::uint32_t i = 0; i < e.length; ++i) {
                blocks.push_back(e.physical + i);
            }
        }
        return blocks;
    }

    std::vector<Slot> entries(Txn* t, std::uint64_t dir) {
        Inode inode = get_inode(t, dir);
        if (inode.type != static_cast<std::uint16_t>(InodeType::directory)) {
            throw Error(ErrorCode::invalid_input,
                        "inode " + std::to_string(dir) + " is not a directory");
        }
        std::vector<Slot> slots;
        for (std::uint64_t b : directory_blocks(t, dir, inode)) {
            auto db = load<DirectoryBlock>(view(t, b, BlockKind::directory));
            if (db.owner_inode != dir) {
                throw Error(ErrorCode::invalid_input,
                            "directory block " + std::to_string(b) + " belongs to another inode");
            }
            for (std::size_t i = 0; i < kEntriesPerDirectoryBlock; ++i) {
                const DirectoryEntry& e = db.entries[i];
                if (e.inode == 0) {
                    slots.push_back({b, i, DirectoryEntry{}});
                    continue;
                }
                if (e.name_length == 0 || e.name_length > kMaxNameLength ||
                    !valid_name(entry_name(e))) {
                    throw Error(ErrorCode::invalid_input,
                                "directory block " + std::to_string(b) + ": malformed entry name");
                }
                check_inode_number(e.inode);
                slots.push_back({b, i, e});
            }
        }
        return slots;
    }

    std::optional<Slot> lookup(Txn* t, std::uint64_t dir, std::string_view name) {
        for (const Slot& s : entries(t, dir)) {
            if (s.entry.inode != 0 && entry_name(s.entry) == name) {
                return s;
            }
        }
        return std::nullopt;
    }

    void write_slot(Txn& t, std::uint64_t block, std::size_t index, const DirectoryEntry& entry) {
        Block& b = modify(t, block, BlockKind::directory);
        std::memcpy(b.data() + offsetof(DirectoryBlock, entries) + index * sizeof(DirectoryEntry),
                    &entry, sizeof entry);
    }

    void add_entry(Txn& t, std::uint64_t dir, std::string_view name, std::uint64_t ino,
                   InodeType type) {
        DirectoryEntry entry{};
        entry.inode = ino;
        entry.name_length = static_cast<std::uint16_t>(name.size());
        entry.type = static_cast<std::uint8_t>(type);
        std::memcpy(entry.name.data(), name.data(), name.size());
        for (const Slot& s : entries(&t, dir)) {
            if (s.entry.inode == 0) {
                write_slot(t, s.block, s.index, entry);
                touch(t, dir);
                return;
            }
        }
        Inode inode = get_inode(&t, dir);
        set_allocation(t, dir, inode, inode.allocated_blocks + 1, false);
        inode.size = inode.allocated_blocks * kBlockSize;
        inode.mtime_unix_ns = now_unix_ns();
        put_inode(t, dir, inode);
        auto extents = load_extents(&t, dir, inode);
        std::uint64_t block = physical_of(extents, inode.allocated_blocks - 1);
        Block& b = fresh(t, block, BlockKind::directory);
        DirectoryBlock db{};
        db.owner_inode = dir;
        db.entries[0] = entry;
        std::memcpy(b.data() + sizeof(BlockHeader),
                    reinterpret_cast<const std::byte*>(&db) + sizeof(BlockHeader),
                    sizeof(DirectoryBlock) - sizeof(BlockHeader));
    }

    void touch(Txn& t, std::uint64_t ino) {
        Inode inode = get_inode(&t, ino);
        inode.mtime_unix_ns = now_unix_ns();
        put_inode(t, ino, inode);
    }

    // ---- paths
    std::uint64_t resolve(Txn* t, std::string_view path) {
        std::uint64_t ino = kRootInode;
        for (const std::string& part : split_path(path)) {
            if (get_inode(t, ino).type != static_cast<std::uint16_t>(InodeType::directory)) {
                throw Error(ErrorCode::not_found,
                            "not a directory on the way to " + std::string(path));
            }
            auto slot = lookup(t, ino, part);
            if (!slot) {
                throw Error(ErrorCode::not_found,
                            "no such file or directory: " + std::string(path));
            }
            ino = slot->entry.inode;
            if (get_inode(t, ino).type == static_cast<std::uint16_t>(InodeType::free)) {
                throw Error(ErrorCode::invalid_input,
                            "directory entry " + part + " names a free inode");
            }
        }
        return ino;
    }

    std::pair<std::uint64_t, std::string> resolve_parent(Txn* t, std::string_view path) {
        auto parts = split_path(path);
        if (parts.empty()) {
            throw Error(ErrorCode::usage, "the root directory cannot be the target");
        }
        std::string leaf = parts.back();
        std::uint64_t dir = kRootInode;
        for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
            if (get_inode(t, dir).type != static_cast<std::uint16_t>(InodeType::directory)) {
                throw Error(ErrorCode::not_found,
                            "not a directory on the way to " + std::string(path));
            }
            auto slot = lookup(t, dir, parts[i]);
            if (!slot) {
                throw Error(ErrorCode::not_found,
                            "no such directory: " + parts[i] + " in " + std::string(path));
            }
            dir = slot->entry.inode;
        }
        if (get_inode(t, dir).type != static_cast<std::uint16_t>(InodeType::directory)) {
            throw Error(ErrorCode::not_found, "not a directory on the way to " + std::string(path));
        }
        return {dir, leaf};
    }

    FileInfo info(Txn* t, std::uint64_t ino, std::string name) {
        Inode inode = get_inode(t, ino);
        FileInfo fi;
        fi.inode = ino;
        fi.generation = inode.generation;
        fi.type = static_cast<InodeType>(inode.type);
        fi.size = inode.size;
        fi.allocated_blocks = inode.allocated_blocks;
        fi.extent_count = inode.extent_count;
        fi.mtime_unix_ns = inode.mtime_unix_ns;
        fi.flags = inode.flags;
        fi.name = std::move(name);
        return fi;
    }

    std::uint64_t new_inode(Txn& t, InodeType type, std::uint64_t parent) {
        if (free_inodes.empty()) {
            throw Error(ErrorCode::failed, "no free inodes on the volume");
        }
        std::uint64_t ino = *free_inodes.begin();
        free_inodes.erase(free_inodes.begin());
        Inode old = get_inode(&t, ino);
        Inode inode{};
        inode.type = static_cast<std::uint16_t>(type);
        inode.generation = old.generation + 1;
        inode.parent = parent;
        inode.ctime_unix_ns = inode.mtime_unix_ns = now_unix_ns();
        put_inode(t, ino, inode);
        return ino;
    }

    FileInfo create(std::string_view path, InodeType type) {
        return mutate([&](Txn& t) {
            auto [dir, leaf] = resolve_parent(&t, path);
            check_user_target(&t, dir, leaf);
            if (lookup(&t, dir, leaf)) {
                throw Error(ErrorCode::conflict, std::string(path) + " already exists");
            }
            std::uint64_t ino = new_inode(t, type, dir);
            add_entry(t, dir, leaf, ino, type);
            return info(&t, ino, leaf);
        });
    }

    // One step of a resize: returns true when `size` was reached.
    bool resize_step(std::uint64_t ino, std::uint64_t generation, std::uint64_t size,
                     std::uint64_t max_step) {
        return mutate([&](Txn& t) {
            Inode inode = get_inode(&t, ino);
            if (inode.type != static_cast<std::uint16_t>(InodeType::file) ||
                inode.generation != generation) {
                throw Error(ErrorCode::not_found, "the file was deleted");
            }
            check_not_snapshot(inode);
            const std::uint64_t target = blocks_for(size);
            std::uint64_t have = inode.allocated_blocks;
            std::uint64_t next = target;
            if (target > have && target - have > max_step) {
                next = have + max_step;
            } else if (target < have && have - target > max_step) {
                next = have - max_step;
            }
            if (size < inode.size && size % kBlockSize != 0) {
                // Zero the tail of the new last block: a later grow must read zeros there.
                // A block a snapshot shares is copied first (its own transaction).
                if (shared.any_shared(physical_of(load_extents(&t, ino, inode), size / kBlockSize),
                                      1)) {
                    throw NeedsCopy{size / kBlockSize};
                }
                zero_tail(ino, inode, size);
            }
            set_allocation(t, ino, inode, next, true);
            inode.size = next == target ? size : std::min(inode.size, next * kBlockSize);
            inode.mtime_unix_ns = now_unix_ns();
            put_inode(t, ino, inode);
            return next == target;
        });
    }

    void zero_tail(std::uint64_t ino, const Inode& inode, std::uint64_t size) {
        auto extents = load_extents(nullptr, ino, inode);
        std::uint64_t block = physical_of(extents, size / kBlockSize);
        AlignedBuffer buffer(kBlockSize);
        device.read(block * kBlockSize, buffer.span());
        std::memset(buffer.data() + size % kBlockSize, 0, kBlockSize - size % kBlockSize);
        device.write(block * kBlockSize, buffer.span());
    }

    // Sizes and offsets come from nodes as any 64-bit value: a file end past what the data
    // area can hold is refused before any arithmetic on it (which could wrap around).
    void check_file_end(std::uint64_t offset, std::uint64_t length) const {
        const std::uint64_t limit = (sb.data_end - sb.data_start) * kBlockSize;
        if (offset > limit || length > limit - offset) {
            throw Error(ErrorCode::failed, "a file end at " + std::to_string(offset) + " + " +
                                               std::to_string(length) +
                                               " bytes exceeds the volume's data area");
        }
    }

    void resize_inode(std::uint64_t ino, std::uint64_t size) {
        check_file_end(size, 0);
        const std::uint64_t generation = get_inode(nullptr, ino).generation;
        // Large resizes are a series of transactions (each consistent), small enough for
        // the journal; a step that still does not fit is halved.
        std::uint64_t step = 8 * kBitsPerBitmapBlock;
        for (;;) {
            try {
                if (resize_step(ino, generation, size, step)) {
                    return;
                }
            } catch (const NeedsCopy& c) {
                unshare(ino, generation, c.block, 1);
            } catch (const TransactionTooLarge&) {
                if (step == 1) {
                    throw Error(ErrorCode::failed, "the journal is too small for this resize");
                }
                step /= 2;
            }
        }
    }

    // ---- snapshots (docs/csv-format.md §12)
    static void check_not_snapshot(const Inode& inode) {
        if (has_flag(inode, inode_snapshot | inode_system)) {
            throw Error(ErrorCode::conflict, "snapshots are read-only");
        }
    }
    // A user may create or move an entry named `leaf` into `dir`.
    void check_user_target(Txn* t, std::uint64_t dir, std::string_view leaf) {
        if (dir == kRootInode && leaf == kSnapshotDirectory) {
            throw Error(ErrorCode::conflict, "'" + std::string(kSnapshotDirectory) +
                                                 "' is reserved for the volume's snapshots");
        }
        check_not_snapshot(get_inode(t, dir));
    }

    // /.snapshots, or 0 when there is none yet.
    std::uint64_t snapshot_directory(Txn* t) {
        auto slot = lookup(t, kRootInode, kSnapshotDirectory);
        if (!slot) {
            return 0;
        }
        const Inode inode = get_inode(t, slot->entry.inode);
        if (!has_flag(inode, inode_system) ||
            inode.type != static_cast<std::uint16_t>(InodeType::directory)) {
            throw Error(ErrorCode::conflict, "/" + std::string(kSnapshotDirectory) +
                                                 " is an ordinary entry (rename it to take "
                                                 "snapshots)");
        }
        return slot->entry.inode;
    }

    // Copies the blocks of run `from` into `to` (as many blocks in total).
    void copy_blocks(std::uint64_t from, const std::vector<Run>& to) {
        AlignedBuffer buffer(kIoChunk);
        std::uint64_t src = from;
        for (const Run& r : to) {
            std::uint64_t done = 0;
            while (done < r.length) {
                const std::uint64_t n =
                    std::min<std::uint64_t>(r.length - done, kIoChunk / kBlockSize);
                auto span = buffer.span().first(static_cast<std::size_t>(n * kBlockSize));
                device.read(src * kBlockSize, span);
                device.write((r.start + done) * kBlockSize, span);
                src += n;
                done += n;
            }
        }
    }

    // Copy-on-write: gives file `ino` its own copy of every block it shares among file blocks
    // [first, first + count) (rounded out to kCopyGranule), in one transaction. The copies
    // are durable before the commit that points the file at them.
    void unshare(std::uint64_t ino, std::uint64_t generation, std::uint64_t first,
                 std::uint64_t count) {
        if (shared.empty()) {
            return;
        }
        mutate([&](Txn& t) {
            Inode inode = get_inode(&t, ino);
            if (inode.type != static_cast<std::uint16_t>(InodeType::file) ||
                inode.generation != generation) {
                throw Error(ErrorCode::not_found, "the file was deleted");
            }
            check_not_snapshot(inode);
            const std::uint64_t lo = first / kCopyGranule * kCopyGranule;
            CopyStream& stream = copy_streams[ino];
            const bool sequential = stream.generation == generation && stream.next == lo;
            const std::uint64_t window =
                sequential ? std::min(stream.window * 2, kMaxCopyWindow) : kCopyGranule;
            const std::uint64_t hi =
                std::min(inode.allocated_blocks,
                         std::max((first + count + kCopyGranule - 1) / kCopyGranule * kCopyGranule,
                                  lo + window));
            stream = {generation, hi, window};
            std::vector<Extent> out;
            auto emit = [&](std::uint64_t logical, std::uint64_t physical, std::uint64_t n) {
                if (!out.empty() && out.back().physical + out.back().length == physical &&
                    out.back().length + n <= kMaxExtentLength) {
                    out.back().length += static_cast<std::uint32_t>(n);
                } else {
                    out.push_back({logical, physical, static_cast<std::uint32_t>(n), 0});
                }
            };
            bool changed = false;
            for (const Extent& e : load_extents(&t, ino, inode)) {
                const std::uint64_t a = std::max(lo, e.logical);
                const std::uint64_t b = std::min(hi, e.logical + e.length);
                const auto runs =
                    a < b ? shared.shared(e.physical + (a - e.logical), b - a) : std::vector<Run>{};
                std::uint64_t logical = e.logical;
                for (const Run& r : runs) {
                    const std::uint64_t r_logical = e.logical + (r.start - e.physical);
                    if (r_logical > logical) {
                        emit(logical, e.physical + (logical - e.logical), r_logical - logical);
                    }
                    const std::uint64_t goal =
                        out.empty() ? 0 : out.back().physical + out.back().length;
                    auto copies = allocate(t, r.length, goal);
                    copy_blocks(r.start, copies);
                    t.data_written = true;
                    std::uint64_t l = r_logical;
                    for (const Run& c : copies) {
                        emit(l, c.start, c.length);
                        l += c.length;
                    }
                    for (const Run& freed : shared.drop(r.start, r.length)) {
                        release(t, freed.start, freed.length); // none: the run was shared
                    }
                    logical = r_logical + r.length;
                    changed = true;
                }
                if (logical < e.logical + e.length) {
                    emit(logical, e.physical + (logical - e.logical),
                         e.logical + e.length - logical);
                }
            }
            if (!changed) {
                return;
            }
            store_extents(t, ino, inode, out);
            put_inode(t, ino, inode);
        });
    }

    // Removes entry `name` (inode `ino`) from `dir` and frees the inode and the blocks only
    // it references. Directories must be empty; the caller checked open files.
    void unlink_inode(Txn& t, std::uint64_t dir, std::string_view name, std::uint64_t ino) {
        auto slot = lookup(&t, dir, name);
        if (!slot || slot->entry.inode != ino) {
            throw Error(ErrorCode::not_found,
                        "no entry " + std::string(name) + " for inode " + std::to_string(ino));
        }
        Inode inode = get_inode(&t, ino);
        if (inode.type == static_cast<std::uint16_t>(InodeType::directory)) {
            for (const auto& e : entries(&t, ino)) {
                if (e.entry.inode != 0) {
                    throw Error(ErrorCode::conflict, std::string(name) + " is not empty");
                }
            }
            for (std::uint64_t b : directory_blocks(&t, ino, inode)) {
                t.dirty.erase(b);
            }
        }
        set_allocation(t, ino, inode, 0, false);
        Inode freed{};
        freed.generation = inode.generation; // the next user bumps it
        put_inode(t, ino, freed);
        free_inodes.insert(ino);
        write_slot(t, slot->block, slot->index, DirectoryEntry{});
        touch(t, dir);
    }

    // Every inode below directory `root` (itself first), as (directory, name, inode).
    struct TreeEntry {
        std::uint64_t dir;
        std::string name;
        std::uint64_t ino;
    };
    std::vector<TreeEntry> tree_preorder(std::uint64_t dir, std::string name, std::uint64_t root) {
        std::vector<TreeEntry> out{{dir, std::move(name), root}};
        for (std::size_t i = 0; i < out.size(); ++i) {
            if (out.size() > sb.inode_count) {
                throw Error(ErrorCode::invalid_input, "directory tree has a cycle");
            }
            const std::uint64_t ino = out[i].ino;
            if (get_inode(nullptr, ino).type != static_cast<std::uint16_t>(InodeType::directory)) {
                continue;
            }
            for (const Slot& slot : entries(nullptr, ino)) {
                if (slot.entry.inode != 0) {
                    out.push_back({ino, entry_name(slot.entry), slot.entry.inode});
                }
            }
        }
        return out;
    }

    // Removes a snapshot's tree, children before parents, in transactions that each leave
    // the volume consistent (a crash in between leaves a pending root for the next mount).
    void remove_tree(std::uint64_t dir, const std::string& name, std::uint64_t root) {
        auto order = tree_preorder(dir, name, root);
        std::reverse(order.begin(), order.end());
        std::size_t i = 0;
        while (i < order.size()) {
            mutate([&](Txn& t) {
                while (i < order.size() && t.dirty.size() < journal.capacity() / 2) {
                    unlink_inode(t, order[i].dir, order[i].name, order[i].ino);
                    ++i;
                }
            });
        }
    }

    // With no snapshot left, no block is shared: the volume is plain 1.0-compatible again.
    void drop_snapshot_feature_if_unused() {
        const std::uint64_t dir = snapshot_directory(nullptr);
        if (dir != 0) {
            for (const Slot& slot : entries(nullptr, dir)) {
                if (slot.entry.inode != 0) {
                    return;
                }
            }
        }
        if ((sb.incompat_features & kIncompatSnapshots) == 0) {
            return;
        }
        if (!shared.empty()) {
            throw Error(ErrorCode::internal, "no snapshot left but blocks are still shared");
        }
        mutate([&](Txn& t) {
            t.sb_next = sb;
            t.sb_next->incompat_features &= ~kIncompatSnapshots;
        });
    }

    // A snapshot that a crash interrupted (being taken or released) is removed.
    void finish_pending_snapshots() {
        if ((sb.incompat_features & kIncompatSnapshots) == 0) {
            return;
        }
        const std::uint64_t dir = snapshot_directory(nullptr);
        if (dir == 0) {
            drop_snapshot_feature_if_unused();
            return;
        }
        for (const Slot& slot : entries(nullptr, dir)) {
            if (slot.entry.inode != 0 &&
                has_flag(get_inode(nullptr, slot.entry.inode), inode_snapshot_pending)) {
                remove_tree(dir, entry_name(slot.entry), slot.entry.inode);
            }
        }
        drop_snapshot_feature_if_unused();
    }

    FileInfo take_snapshot(std::string_view name) {
        if (name.empty() || name.size() > kMaxSnapshotName || !valid_name(name) ||
            name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                                   "._-:") != std::string_view::npos) {
            throw Error(ErrorCode::usage, "invalid snapshot name '" + std::string(name) +
                                              "' (1-64 of A-Z a-z 0-9 . _ - :)");
        }
        std::uint64_t dir = 0;
        // 1. The snapshot's root directory, marked pending until the copy is complete.
        const std::uint64_t root = mutate([&](Txn& t) {
            dir = snapshot_directory(&t);
            if (dir == 0) {
                dir = new_inode(t, InodeType::directory, kRootInode);
                Inode d = get_inode(&t, dir);
                d.flags = inode_system;
                put_inode(t, dir, d);
                add_entry(t, kRootInode, kSnapshotDirectory, dir, InodeType::directory);
            }
            std::size_t count = 0;
            for (const Slot& slot : entries(&t, dir)) {
                if (slot.entry.inode == 0) {
                    continue;
                }
                if (entry_name(slot.entry) == name) {
                    throw Error(ErrorCode::conflict,
                                "a snapshot named " + std::string(name) + " exists");
                }
                ++count;
            }
            if (count >= kMaxSnapshots) {
                throw Error(ErrorCode::failed, "the volume holds " + std::to_string(count) +
                                                   " snapshots, the most it keeps: release one");
            }
            const std::uint64_t ino = new_inode(t, InodeType::directory, dir);
            Inode r = get_inode(&t, ino);
            r.flags = inode_snapshot | inode_snapshot_root | inode_snapshot_pending;
            put_inode(t, ino, r);
            add_entry(t, dir, name, ino, InodeType::directory);
            t.sb_next = sb;
            t.sb_next->incompat_features |= kIncompatSnapshots;
            t.sb_next->snapshot_generation += 1;
            return ino;
        });
        try {
            clone_tree(root);
            mutate([&](Txn& t) {
                Inode r = get_inode(&t, root);
                r.flags = static_cast<std::uint16_t>(r.flags & ~inode_snapshot_pending);
                put_inode(t, root, r);
            });
        } catch (...) {
            if (!broken && !fenced) {
                try {
                    remove_tree(dir, std::string(name), root);
                    drop_snapshot_feature_if_unused();
                } catch (...) {
                    // The root stays pending: the next mount removes it.
                }
            }
            throw;
        }
        return info(nullptr, root, std::string(name));
    }

    // 2. Copies the live tree's inodes and directories below `root` (the snapshot's files
    // reference the live files' data blocks), in transactions of at most half the journal.
    void clone_tree(std::uint64_t root) {
        struct Item {
            std::uint64_t live;
            std::uint64_t copy;
            std::vector<std::pair<std::string, std::uint64_t>> children;
            std::size_t next = 0;
        };
        auto children_of = [&](std::uint64_t dir) {
            std::vector<std::pair<std::string, std::uint64_t>> out;
            for (const Slot& slot : entries(nullptr, dir)) {
                if (slot.entry.inode == 0) {
                    continue;
                }
                std::string name = entry_name(slot.entry);
                if (dir == kRootInode && name == kSnapshotDirectory) {
                    continue; // snapshots are not part of snapshots
                }
                out.emplace_back(std::move(name), slot.entry.inode);
            }
            return out;
        };
        std::deque<Item> queue;
        queue.push_back({kRootInode, root, children_of(kRootInode)});
        std::size_t cloned = 0;
        while (!queue.empty()) {
            mutate([&](Txn& t) {
                while (!queue.empty() && t.dirty.size() < journal.capacity() / 2) {
                    Item& item = queue.front();
                    if (item.next == item.children.size()) {
                        queue.pop_front();
                        continue;
                    }
                    if (++cloned > sb.inode_count) {
                        throw Error(ErrorCode::invalid_input, "directory tree has a cycle");
                    }
                    const auto& [name, child] = item.children[item.next++];
                    const Inode live = get_inode(&t, child);
                    const auto type = static_cast<InodeType>(live.type);
                    const std::uint64_t ino = new_inode(t, type, item.copy);
                    Inode copy = get_inode(&t, ino);
                    copy.flags = inode_snapshot;
                    copy.ctime_unix_ns = live.ctime_unix_ns;
                    copy.mtime_unix_ns = live.mtime_unix_ns;
                    if (type == InodeType::file) {
                        const auto extents = load_extents(&t, child, live);
                        copy.size = live.size;
                        copy.allocated_blocks = live.allocated_blocks;
                        store_extents(t, ino, copy, extents);
                        for (const Extent& e : extents) {
                            shared.add(e.physical, e.length);
                        }
                    }
                    put_inode(t, ino, copy);
                    add_entry(t, item.copy, name, ino, type);
                    if (type == InodeType::directory) {
                        queue.push_back({child, ino, children_of(child)});
                    }
                }
            });
        }
    }

    // The snapshot root named `name`, and /.snapshots.
    std::pair<std::uint64_t, std::uint64_t> find_snapshot(std::string_view name) {
        const std::uint64_t dir = snapshot_directory(nullptr);
        auto slot = dir == 0 ? std::nullopt : lookup(nullptr, dir, name);
        if (!slot) {
            throw Error(ErrorCode::not_found, "no snapshot named " + std::string(name));
        }
        return {dir, slot->entry.inode};
    }

    void release_snapshot(std::string_view name) {
        const auto found = find_snapshot(name);
        const std::uint64_t dir = found.first;
        const std::uint64_t root = found.second;
        for (const TreeEntry& e : tree_preorder(dir, std::string(name), root)) {
            if (open_counts.count(e.ino) != 0) {
                throw Error(ErrorCode::conflict,
                            "snapshot " + std::string(name) + " has open files (" + e.name + ")");
            }
        }
        mutate([&](Txn& t) {
            Inode r = get_inode(&t, root);
            r.flags = static_cast<std::uint16_t>(r.flags | inode_snapshot_pending);
            put_inode(t, root, r);
        });
        remove_tree(dir, std::string(name), root);
        drop_snapshot_feature_if_unused();
    }

    const FileHandle& handle_of(const FileHandle& h) {
        auto it = handles.find(h.id);
        if (it == handles.end() || it->second.inode != h.inode) {
            throw Error(ErrorCode::usage, "invalid or closed file handle");
        }
        return it->second;
    }

    Inode open_inode(const FileHandle& h) {
        handle_of(h);
        Inode inode = get_inode(nullptr, h.inode);
        if (inode.generation != h.generation) {
            throw Error(ErrorCode::internal, "open file changed generation");
        }
        return inode;
    }
};

// ------------------------------------------------------------------------------------------

Volume::Volume(std::unique_ptr<State> state) : state_(std::move(state)) {}

Volume::~Volume() {
    try {
        unmount();
    } catch (...) {
        // Best effort: a lease we could not release expires by itself.
    }
}

std::unique_ptr<Volume> Volume::mount(BlockDevice& device, const MountOptions& options) {
    auto s = std::make_unique<State>(device);
    s->options = options;
    const std::uint64_t device_blocks = device.size() / kBlockSize;
    if (device_blocks < 16) {
        throw Error(ErrorCode::invalid_input, "device too small to hold a CSV volume");
    }
    // Layout from the primary superblock, or the backup at the end of the device when the
    // primary is torn (a crash while it was written home) or damaged.
    std::string problem;
    Superblock layout{};
    for (std::uint64_t location : {std::uint64_t{0}, device_blocks - 1}) {
        Block block = read_block(device, location);
        std::string p = block_problem(block, BlockKind::superblock, location);
        if (p.empty()) {
            layout = load<Superblock>(block);
            p = superblock_problem(layout, device_blocks);
        }
        if (p.empty()) {
            problem.clear();
            break;
        }
        problem += (problem.empty() ? "" : "; ") + p;
    }
    if (!problem.empty()) {
        throw Error(ErrorCode::invalid_input, "not a usable CSV volume: " + problem);
    }
    s->journal = {layout.journal_start, layout.journal_blocks, layout.total_blocks};
    s->sb = layout; // enough for block reads until the real superblock is loaded
    // The lease comes first: only the coordinator may replay the journal or write metadata.
    if (!options.read_only) {
        s->lease_generation =
            acquire_lease(device, layout.lease_block, options.identity, options.lease);
    }
    try {
        if (options.read_only) {
            if (auto txn = journal_read(device, s->journal)) {
                for (auto& [b, block] : txn->blocks) {
                    s->cache[b] = block; // overlay: what replay would write
                }
                s->replayed = txn->seq;
            }
        } else {
            s->replayed = journal_replay(device, s->journal).value_or(0);
        }
        Block sb_block = s->cache.count(0) ? s->cache.at(0) : read_block(device, 0);
        validate_block(sb_block, BlockKind::superblock, 0);
        s->sb = load<Superblock>(sb_block);
        if (std::string p = superblock_problem(s->sb, device_blocks); !p.empty()) {
            throw Error(ErrorCode::invalid_input, p);
        }
        if (s->sb.journal_start != layout.journal_start ||
            s->sb.journal_blocks != layout.journal_blocks) {
            throw Error(ErrorCode::invalid_input,
                        "primary and backup superblocks disagree on the journal");
        }
        s->cache[0] = sb_block;
        s->last_seq = std::max(s->sb.header.txn_seq, s->replayed);
        s->rebuild_indexes();
        if (s->allocator.free_blocks() != s->sb.free_blocks ||
            s->free_inodes.size() != s->sb.free_inodes) {
            throw Error(
                ErrorCode::invalid_input,
                "superblock free counts disagree with the bitmap and inode table (run check)");
        }
        if (!options.read_only) {
            s->finish_pending_snapshots(); // a crash interrupted taking or releasing one
        }
    } catch (...) {
        if (!options.read_only) {
            try {
                release_lease(device, layout.lease_block, options.identity, s->lease_generation);
            } catch (...) {
                // The lease expires by itself.
            }
        }
        throw;
    }
    return std::unique_ptr<Volume>(new Volume(std::move(s)));
}

void Volume::unmount() {
    State& s = *state_;
    if (!s.mounted) {
        return;
    }
    s.mounted = false;
    if (s.options.read_only || s.broken) {
        return;
    }
    // The backup superblock follows the primary at clean unmount (layout never changes in
    // v1.0, so a stale backup's counts only matter to `check`, which reads the primary).
    Block backup = s.cache.at(0);
    BlockHeader h = header_of(backup);
    h.block_number = s.sb.data_end;
    store(backup, h);
    reseal_block(backup);
    verify_lease(s.device, s.sb.lease_block, s.options.identity, s.lease_generation);
    write_block(s.device, s.sb.data_end, backup);
    s.device.flush();
    release_lease(s.device, s.sb.lease_block, s.options.identity, s.lease_generation);
}

std::uint64_t Volume::hand_over(const LeaseIdentity& target) {
    State& s = *state_;
    s.check_writable();
    Block backup = s.cache.at(0);
    BlockHeader h = header_of(backup);
    h.block_number = s.sb.data_end;
    store(backup, h);
    reseal_block(backup);
    verify_lease(s.device, s.sb.lease_block, s.options.identity, s.lease_generation);
    write_block(s.device, s.sb.data_end, backup);
    s.device.flush();
    const std::uint64_t generation =
        hand_over_lease(s.device, s.sb.lease_block, s.options.identity, s.lease_generation, target);
    s.mounted = false;
    return generation;
}

FileInfo Volume::stat(std::string_view path) {
    auto parts = split_path(path);
    std::uint64_t ino = state_->resolve(nullptr, path);
    return state_->info(nullptr, ino, parts.empty() ? "/" : parts.back());
}

std::vector<FileInfo> Volume::list(std::string_view directory) {
    std::uint64_t dir = state_->resolve(nullptr, directory);
    if (state_->get_inode(nullptr, dir).type != static_cast<std::uint16_t>(InodeType::directory)) {
        throw Error(ErrorCode::conflict, std::string(directory) + " is not a directory");
    }
    std::vector<FileInfo> out;
    for (const auto& slot : state_->entries(nullptr, dir)) {
        if (slot.entry.inode != 0) {
            out.push_back(state_->info(nullptr, slot.entry.inode, entry_name(slot.entry)));
        }
    }
    std::sort(out.begin(), out.end(),
              [](const FileInfo& a, const FileInfo& b) { return a.name < b.name; });
    return out;
}

FileInfo Volume::create_file(std::string_view path, std::uint64_t size) {
    state_->check_file_end(size, 0);
    FileInfo fi = state_->create(path, InodeType::file);
    if (size > 0) {
        state_->resize_inode(fi.inode, size);
        fi = stat(path);
    }
    return fi;
}

FileInfo Volume::make_directory(std::string_view path) {
    return state_->create(path, InodeType::directory);
}

void Volume::remove(std::string_view path) {
    State& s = *state_;
    s.mutate([&](State::Txn& t) {
        auto [dir, leaf] = s.resolve_parent(&t, path);
        auto slot = s.lookup(&t, dir, leaf);
        if (!slot) {
            throw Error(ErrorCode::not_found, "no such file or directory: " + std::string(path));
        }
        const std::uint64_t ino = slot->entry.inode;
        const Inode inode = s.get_inode(&t, ino);
        if (has_flag(inode, inode_snapshot | inode_system)) {
            throw Error(ErrorCode::conflict,
                        std::string(path) + " is part of a snapshot (release the snapshot)");
        }
        if (inode.type == static_cast<std::uint16_t>(InodeType::file) &&
            s.open_counts.count(ino) != 0) {
            throw Error(ErrorCode::conflict, std::string(path) + " is open");
        }
        s.unlink_inode(t, dir, leaf, ino);
    });
}

void Volume::rename(std::string_view from, std::string_view to) {
    State& s = *state_;
    s.mutate([&](State::Txn& t) {
        auto [from_dir, from_leaf] = s.resolve_parent(&t, from);
        auto slot = s.lookup(&t, from_dir, from_leaf);
        if (!slot) {
            throw Error(ErrorCode::not_found, "no such file or directory: " + std::string(from));
        }
        auto [to_dir, to_leaf] = s.resolve_parent(&t, to);
        State::check_not_snapshot(s.get_inode(&t, slot->entry.inode));
        s.check_user_target(&t, to_dir, to_leaf);
        if (s.lookup(&t, to_dir, to_leaf)) {
            throw Error(ErrorCode::conflict, std::string(to) + " already exists");
        }
        const std::uint64_t ino = slot->entry.inode;
        // A directory may not move below itself.
        for (std::uint64_t d = to_dir, hops = 0;; d = s.get_inode(&t, d).parent) {
            if (d == ino) {
                throw Error(ErrorCode::usage, "cannot move " + std::string(from) + " into itself");
            }
            if (d == kRootInode || ++hops > s.sb.inode_count) {
                break;
            }
        }
        s.write_slot(t, slot->block, slot->index, DirectoryEntry{});
        s.touch(t, from_dir);
        Inode inode = s.get_inode(&t, ino);
        inode.parent = to_dir;
        s.put_inode(t, ino, inode);
        s.add_entry(t, to_dir, to_leaf, ino, static_cast<InodeType>(inode.type));
    });
}

void Volume::resize(std::string_view path, std::uint64_t size) {
    std::uint64_t ino = state_->resolve(nullptr, path);
    if (state_->get_inode(nullptr, ino).type != static_cast<std::uint16_t>(InodeType::file)) {
        throw Error(ErrorCode::conflict, std::string(path) + " is not a file");
    }
    state_->resize_inode(ino, size);
}

FileHandle Volume::open(std::string_view path) {
    State& s = *state_;
    if (!s.mounted) {
        throw Error(ErrorCode::conflict, "the volume is not mounted");
    }
    std::uint64_t ino = s.resolve(nullptr, path);
    Inode inode = s.get_inode(nullptr, ino);
    if (inode.type != static_cast<std::uint16_t>(InodeType::file)) {
        throw Error(ErrorCode::conflict, std::string(path) + " is not a file");
    }
    FileHandle h{s.next_handle++, ino, inode.generation};
    s.handles[h.id] = h;
    s.open_counts[ino] += 1;
    return h;
}

FileHandle Volume::open(std::uint64_t ino, std::uint64_t generation) {
    State& s = *state_;
    if (!s.mounted) {
        throw Error(ErrorCode::conflict, "the volume is not mounted");
    }
    if (ino == 0 || ino >= s.sb.inode_count) {
        throw Error(ErrorCode::not_found, "no inode " + std::to_string(ino));
    }
    Inode inode = s.get_inode(nullptr, ino);
    if (inode.type != static_cast<std::uint16_t>(InodeType::file) ||
        inode.generation != generation) {
        throw Error(ErrorCode::not_found, "inode " + std::to_string(ino) + " generation " +
                                              std::to_string(generation) + " is gone");
    }
    FileHandle h{s.next_handle++, ino, inode.generation};
    s.handles[h.id] = h;
    s.open_counts[ino] += 1;
    return h;
}

void Volume::close(const FileHandle& handle) {
    State& s = *state_;
    s.handle_of(handle);
    s.handles.erase(handle.id);
    if (--s.open_counts[handle.inode] == 0) {
        s.open_counts.erase(handle.inode);
    }
}

std::size_t Volume::read(const FileHandle& handle, std::uint64_t offset, std::span<std::byte> out) {
    State& s = *state_;
    Inode inode = s.open_inode(handle);
    if (offset >= inode.size) {
        return 0;
    }
    const std::size_t total =
        static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), inode.size - offset));
    auto extents = s.load_extents(nullptr, handle.inode, inode);
    std::byte* buffer = s.scratch_buffer(io_buffer_size(offset, total));
    std::size_t done = 0;
    while (done < total) {
        const std::uint64_t pos = offset + done;
        const std::uint64_t logical = pos / kBlockSize;
        const std::uint64_t in_block = pos % kBlockSize;
        auto it = std::upper_bound(extents.begin(), extents.end(), logical,
                                   [](std::uint64_t l, const Extent& e) { return l < e.logical; });
        --it;
        const std::uint64_t run_blocks =
            std::min<std::uint64_t>(it->logical + it->length - logical, kIoChunk / kBlockSize);
        const std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>(run_blocks * kBlockSize - in_block, total - done));
        const std::size_t io = static_cast<std::size_t>(blocks_for(in_block + n) * kBlockSize);
        s.device.read((it->physical + (logical - it->logical)) * kBlockSize,
                      std::span<std::byte>(buffer, io));
        std::memcpy(out.data() + done, buffer + in_block, n);
        done += n;
    }
    return total;
}

void Volume::write(const FileHandle& handle, std::uint64_t offset, std::span<const std::byte> in) {
    State& s = *state_;
    Inode inode = s.open_inode(handle);
    if (in.empty()) {
        return;
    }
    if (s.options.read_only) {
        throw Error(ErrorCode::conflict, "the volume is mounted read-only");
    }
    State::check_not_snapshot(inode);
    s.check_file_end(offset, in.size());
    if (offset + in.size() > inode.size) {
        s.resize_inode(handle.inode, offset + in.size());
        inode = s.get_inode(nullptr, handle.inode);
    }
    if (is_shared(handle, offset, in.size())) {
        const std::uint64_t first = offset / kBlockSize;
        s.unshare(handle.inode, handle.generation, first, blocks_for(offset + in.size()) - first);
        inode = s.get_inode(nullptr, handle.inode);
    }
    auto extents = s.load_extents(nullptr, handle.inode, inode);
    std::byte* buffer = s.scratch_buffer(io_buffer_size(offset, in.size()));
    std::size_t done = 0;
    while (done < in.size()) {
        const std::uint64_t pos = offset + done;
        const std::uint64_t logical = pos / kBlockSize;
        const std::uint64_t in_block = pos % kBlockSize;
        auto it = std::upper_bound(extents.begin(), extents.end(), logical,
                                   [](std::uint64_t l, const Extent& e) { return l < e.logical; });
        --it;
        const std::uint64_t run_blocks =
            std::min<std::uint64_t>(it->logical + it->length - logical, kIoChunk / kBlockSize);
        const std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>(run_blocks * kBlockSize - in_block, in.size() - done));
        const std::size_t io = static_cast<std::size_t>(blocks_for(in_block + n) * kBlockSize);
        const std::uint64_t device_offset = (it->physical + (logical - it->logical)) * kBlockSize;
        // Partial first/last blocks: read-modify-write.
        if (in_block != 0 || (in_block + n) % kBlockSize != 0) {
            s.device.read(device_offset, std::span<std::byte>(buffer, io));
        }
        std::memcpy(buffer + in_block, in.data() + done, n);
        s.device.write(device_offset, std::span<std::byte>(buffer, io));
        done += n;
    }
}

void Volume::resize(const FileHandle& handle, std::uint64_t size) {
    state_->open_inode(handle);
    state_->resize_inode(handle.inode, size);
}

BlockMap Volume::block_map(const FileHandle& handle, std::uint64_t offset, std::uint64_t length) {
    State& s = *state_;
    Inode inode = s.open_inode(handle);
    BlockMap map{handle.inode, inode.generation, inode.size, {}};
    const std::uint64_t allocated = inode.allocated_blocks * kBlockSize;
    const std::uint64_t end =
        offset + std::min(length, allocated > offset ? allocated - offset : 0);
    const bool snapshot = has_flag(inode, inode_snapshot);
    for (const Extent& e : s.load_extents(nullptr, handle.inode, inode)) {
        const std::uint64_t e_start = e.logical * kBlockSize;
        const std::uint64_t e_end = e_start + std::uint64_t{e.length} * kBlockSize;
        const std::uint64_t a = std::max(offset, e_start);
        const std::uint64_t b = std::min(end, e_end);
        if (a >= b) {
            continue;
        }
        const std::uint64_t device_a = e.physical * kBlockSize + (a - e_start);
        const std::uint64_t device_b = device_a + (b - a);
        // Blocks another file references too are mapped read-only: a node asks for a copy
        // (unshare) before it writes there.
        std::uint64_t pos = device_a;
        auto piece = [&](std::uint64_t until, bool shared) {
            if (until > pos) {
                map.segments.push_back({a + (pos - device_a), pos, until - pos, shared});
                pos = until;
            }
        };
        if (!snapshot) {
            const std::uint64_t first = device_a / kBlockSize;
            for (const Run& r : s.shared.shared(first, blocks_for(device_b) - first)) {
                piece(std::max(device_a, r.start * kBlockSize), false);
                piece(std::min(device_b, (r.start + r.length) * kBlockSize), true);
            }
        }
        piece(device_b, snapshot);
    }
    return map;
}

bool Volume::is_shared(const FileHandle& handle, std::uint64_t offset, std::uint64_t length) {
    State& s = *state_;
    if (s.shared.empty() || length == 0) {
        return false;
    }
    for (const MapSegment& seg : block_map(handle, offset, length).segments) {
        if (seg.shared) {
            return true;
        }
    }
    return false;
}

void Volume::unshare(const FileHandle& handle, std::uint64_t offset, std::uint64_t length) {
    State& s = *state_;
    const Inode inode = s.open_inode(handle);
    State::check_not_snapshot(inode);
    const std::uint64_t allocated = inode.allocated_blocks * kBlockSize;
    if (length == 0 || offset >= allocated) {
        return;
    }
    length = std::min(length, allocated - offset);
    const std::uint64_t first = offset / kBlockSize;
    s.unshare(handle.inode, handle.generation, first, blocks_for(offset + length) - first);
}

FileInfo Volume::create_snapshot(std::string_view name) {
    state_->check_writable();
    return state_->take_snapshot(name);
}

void Volume::release_snapshot(std::string_view name) {
    state_->check_writable();
    state_->release_snapshot(name);
}

std::vector<FileInfo> Volume::snapshots() {
    if (state_->snapshot_directory(nullptr) == 0) {
        return {};
    }
    return list("/" + std::string(kSnapshotDirectory));
}

std::uint64_t Volume::shared_blocks() const {
    return state_->shared.shared_blocks();
}

void Volume::flush() {
    state_->device.flush();
}

Superblock Volume::superblock() const {
    return state_->sb;
}
std::uint64_t Volume::free_blocks() const {
    return state_->allocator.free_blocks();
}
std::uint64_t Volume::free_inodes() const {
    return state_->free_inodes.size();
}
std::uint64_t Volume::last_txn_seq() const {
    return state_->last_seq;
}
std::uint64_t Volume::replayed_seq() const {
    return state_->replayed;
}
std::uint64_t Volume::lease_generation() const {
    return state_->lease_generation;
}
std::uint32_t Volume::lease_duration_ms() const {
    return state_->options.lease.lease_duration_ms;
}

void Volume::heartbeat() {
    state_->check_writable();
    state_->heartbeat();
}

} // namespace godwit::csv
