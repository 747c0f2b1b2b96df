#include "godwit/csv/checker.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "godwit/csv/format.hpp"
#include "godwit/csv/journal.hpp"
#include "godwit/error.hpp"

namespace godwit::csv {
namespace {

constexpr std::size_t kMaxProblems = 200;

class Checker {
  public:
    explicit Checker(BlockDevice& device) : device_(device) {}

    CheckReport run() {
        try {
            check();
        } catch (const Error& e) {
            if (e.code() == ErrorCode::io) {
                throw;
            }
            problem(std::string("check stopped: ") + e.what());
        }
        if (suppressed_ > 0) {
            report_.problems.push_back("... and " + std::to_string(suppressed_) + " more problems");
        }
        return std::move(report_);
    }

  private:
    void problem(std::string text) {
        if (report_.problems.size() < kMaxProblems) {
            report_.problems.push_back(std::move(text));
        } else {
            ++suppressed_;
        }
    }

    Block block_at(std::uint64_t b) {
        auto it = overlay_.find(b);
        return it != overlay_.end() ? it->second : read_block(device_, b);
    }

    // The block if it is a valid `kind` block, else nullopt (and a problem).
    std::optional<Block> metadata(std::uint64_t b, BlockKind kind) {
        if (b >= sb_.total_blocks) {
            problem(std::string(to_string(kind)) + " pointer " + std::to_string(b) +
                    " beyond the volume");
            return std::nullopt;
        }
        Block block = block_at(b);
        if (std::string p = block_problem(block, kind, b); !p.empty()) {
            problem(p);
            return std::nullopt;
        }
        return block;
    }

    // Who holds a data-area block. File data may be shared between one live file and any
    // number of snapshot files (docs/csv-format.md §12); everything else is owned once.
    enum Claim : std::uint8_t { unclaimed, exclusive, live_data, snapshot_data, live_and_snapshot };

    // Claims data-area block b for `owner`; a claim that may not share is a double allocation.
    bool claim(std::uint64_t b, const std::string& owner, Claim kind = exclusive) {
        if (b < sb_.data_start || b >= sb_.data_end) {
            problem(owner + ": block " + std::to_string(b) + " outside the data area");
            return false;
        }
        Claim& c = claimed_[b];
        Claim next = unclaimed;
        if (c == unclaimed) {
            next = kind;
        } else if (kind == snapshot_data && (c == live_data || c == live_and_snapshot)) {
            next = live_and_snapshot;
        } else if (kind == snapshot_data && c == snapshot_data) {
            next = snapshot_data;
        } else if (kind == live_data && c == snapshot_data) {
            next = live_and_snapshot;
        }
        if (next == unclaimed) {
            problem(owner + ": block " + std::to_string(b) + " is also owned by another inode");
            return false;
        }
        if (next != kind) {
            ++shared_claims_;
        }
        c = next;
        return true;
    }

    void check() {
        const std::uint64_t device_blocks = device_.size() / kBlockSize;
        if (device_blocks < 16) {
            problem("device too small to hold a CSV volume");
            return;
        }
        // Superblock (primary, else backup for the layout).
        std::optional<Superblock> layout;
        for (std::uint64_t location : {std::uint64_t{0}, device_blocks - 1}) {
            Block block = read_block(device_, location);
            std::string p = block_problem(block, BlockKind::superblock, location);
            if (p.empty()) {
                auto sb = load<Superblock>(block);
                p = superblock_problem(sb, device_blocks);
                if (p.empty()) {
                    layout = sb;
                    break;
                }
            }
            problem((location == 0 ? "primary " : "backup ") + p);
        }
        if (!layout) {
            return;
        }
        sb_ = *layout;
        const JournalLayout journal{sb_.journal_start, sb_.journal_blocks, sb_.total_blocks};
        try {
            if (auto txn = journal_read(device_, journal)) {
                overlay_ = std::move(txn->blocks);
                report_.pending_txn_seq = txn->seq;
            }
        } catch (const Error& e) {
            if (e.code() == ErrorCode::io) {
                throw;
            }
            problem(std::string("journal: ") + e.what());
        }
        auto primary = metadata(0, BlockKind::superblock);
        if (!primary) {
            return;
        }
        sb_ = load<Superblock>(*primary);
        if (std::string p = superblock_problem(sb_, device_blocks); !p.empty()) {
            problem(p);
            return;
        }
        report_.total_blocks = sb_.total_blocks;
        check_backup();
        if (auto lease = metadata(sb_.lease_block, BlockKind::lease)) {
            if (load<LeaseBlock>(*lease).state > 1) {
                problem("lease block: unknown state");
            }
        }
        claimed_.assign(sb_.total_blocks, unclaimed);
        read_inodes();
        walk_tree();
        compare_bitmap();
        if (shared_claims_ > 0 && (sb_.incompat_features & kIncompatSnapshots) == 0) {
            problem("data blocks are shared by several files but the snapshots feature is off");
        }
    }

    void check_backup() {
        Block block = read_block(device_, sb_.data_end);
        if (std::string p = block_problem(block, BlockKind::superblock, sb_.data_end); !p.empty()) {
            problem("backup " + p);
            return;
        }
        auto backup = load<Superblock>(block);
        if (backup.uuid != sb_.uuid || backup.total_blocks != sb_.total_blocks ||
            backup.journal_blocks != sb_.journal_blocks ||
            backup.bitmap_blocks != sb_.bitmap_blocks ||
            backup.inode_table_blocks != sb_.inode_table_blocks ||
            backup.data_start != sb_.data_start) {
            problem("backup superblock disagrees with the primary on the layout");
        }
    }

    void read_inodes() {
        inodes_.assign(sb_.inode_count, Inode{});
        std::uint64_t free_inodes = 0;
        for (std::uint64_t k = 0; k < sb_.inode_table_blocks; ++k) {
            auto block = metadata(sb_.inode_table_start + k, BlockKind::inode_table);
            if (!block) {
                continue; // its inodes read as free; the tree walk reports dangling entries
            }
            auto table = load<InodeTableBlock>(*block);
            for (std::size_t i = 0; i < kInodesPerBlock; ++i) {
                inodes_[k * kInodesPerBlock + i] = table.inodes[i];
            }
        }
        for (std::uint64_t ino = 1; ino < sb_.inode_count; ++ino) {
            const Inode& inode = inodes_[ino];
            if (inode.type > 2) {
                problem("inode " + std::to_string(ino) + ": unknown type " +
                        std::to_string(inode.type));
                inodes_[ino].type = 0;
                continue;
            }
            if (inode.type == 0) {
                ++free_inodes;
                continue;
            }
            if ((inode.flags & ~kKnownInodeFlags) != 0) {
                problem("inode " + std::to_string(ino) + ": unknown flags");
            }
            extents_[ino] = read_extents(ino, inode);
        }
        if (inodes_[0].type != 0) {
            problem("inode 0 (reserved) is in use");
        }
        if (free_inodes != sb_.free_inodes) {
            problem("superblock says " + std::to_string(sb_.free_inodes) +
                    " free inodes, the table has " + std::to_string(free_inodes));
        }
    }

    std::vector<Extent> read_extents(std::uint64_t ino, const Inode& inode) {
        const std::string who = "inode " + std::to_string(ino);
        std::vector<Extent> extents;
        const std::uint32_t count = inode.extent_count;
        if (inode.allocated_blocks > sb_.data_end - sb_.data_start ||
            count > inode.allocated_blocks) {
            problem(who + ": block or extent count exceeds the volume");
            return extents;
        }
        for (std::uint32_t i = 0; i < std::min<std::uint32_t>(count, kInlineExtents); ++i) {
            extents.push_back(inode.extents[i]);
        }
        std::uint64_t next = inode.extent_block;
        std::uint64_t hops = 0;
        const std::uint64_t max_hops = (count + kExtentsPerMapBlock - 1) / kExtentsPerMapBlock;
        while (extents.size() < count) {
            if (next == 0 || ++hops > max_hops) {
                problem(who + ": extent-map chain shorter than its extent count");
                break;
            }
            if (!claim(next, who + " extent map")) {
                break;
            }
            auto block = metadata(next, BlockKind::extent_map);
            if (!block) {
                break;
            }
            auto map = load<ExtentMapBlock>(*block);
            if (map.owner_inode != ino || map.count == 0 || map.count > kExtentsPerMapBlock ||
                map.count > count - extents.size()) {
                problem(who + ": extent-map block " + std::to_string(next) + " is inconsistent");
                break;
            }
            for (std::uint32_t i = 0; i < map.count; ++i) {
                extents.push_back(map.extents[i]);
            }
            next = map.next_block;
        }
        if (extents.size() == count && next != 0 && count > kInlineExtents) {
            problem(who + ": extent-map chain longer than its extent count");
        }
        std::uint64_t logical = 0;
        for (const Extent& e : extents) {
            if (e.length == 0 || e.logical != logical) {
                problem(who + ": extents are not contiguous from file block 0");
                break;
            }
            if (e.physical < sb_.data_start || e.physical > sb_.data_end ||
                e.length > sb_.data_end - e.physical) {
                problem(who + ": extent at block " + std::to_string(e.physical) + " (+" +
                        std::to_string(e.length) + ") outside the data area");
                break;
            }
            const Claim kind = inode.type != static_cast<std::uint16_t>(InodeType::file) ? exclusive
                               : (inode.flags & inode_snapshot) != 0 ? snapshot_data
                                                                     : live_data;
            for (std::uint64_t b = e.physical; b < e.physical + e.length; ++b) {
                if (!claim(b, who, kind)) {
                    break;
                }
            }
            logical += e.length;
        }
        if (logical != inode.allocated_blocks) {
            problem(who + ": extents hold " + std::to_string(logical) + " blocks, the inode says " +
                    std::to_string(inode.allocated_blocks));
        }
        if (inode.size > inode.allocated_blocks * kBlockSize) {
            problem(who + ": size " + std::to_string(inode.size) + " exceeds its allocation");
        }
        if (inode.type == static_cast<std::uint16_t>(InodeType::directory) &&
            inode.size != inode.allocated_blocks * kBlockSize) {
            problem(who + ": directory size is not its block count");
        }
        return extents;
    }

    void walk_tree() {
        std::vector<std::uint32_t> references(sb_.inode_count, 0);
        if (inodes_[kRootInode].type != static_cast<std::uint16_t>(InodeType::directory)) {
            problem("the root inode is not a directory");
            return;
        }
        references[kRootInode] = 1;
        std::deque<std::uint64_t> queue{kRootInode};
        while (!queue.empty()) {
            const std::uint64_t dir = queue.front();
            queue.pop_front();
            ++report_.directories;
            const std::string who = "directory inode " + std::to_string(dir);
            std::set<std::string> names;
            for (const Extent& e : extents_[dir]) {
                for (std::uint64_t b = e.physical; b < e.physical + e.length; ++b) {
                    auto block = metadata(b, BlockKind::directory);
                    if (!block) {
                        continue;
                    }
                    auto db = load<DirectoryBlock>(*block);
                    if (db.owner_inode != dir) {
                        problem(who + ": block " + std::to_string(b) + " names owner " +
                                std::to_string(db.owner_inode));
                        continue;
                    }
                    for (const DirectoryEntry& entry : db.entries) {
                        if (entry.inode == 0) {
                            continue;
                        }
                        if (entry.name_length == 0 || entry.name_length > kMaxNameLength ||
                            !valid_name(entry_name(entry))) {
                            problem(who + ": malformed entry name");
                            continue;
                        }
                        const std::string name = entry_name(entry);
                        if (!names.insert(name).second) {
                            problem(who + ": duplicate entry '" + name + "'");
                        }
                        if (entry.inode >= sb_.inode_count || inodes_[entry.inode].type == 0) {
                            problem(who + ": entry '" + name + "' names free or invalid inode " +
                                    std::to_string(entry.inode));
                            continue;
                        }
                        const Inode& target = inodes_[entry.inode];
                        if (++references[entry.inode] > 1) {
                            problem("inode " + std::to_string(entry.inode) +
                                    " is linked more than once (at '" + name + "')");
                            continue;
                        }
                        if (target.parent != dir) {
                            problem("inode " + std::to_string(entry.inode) + " ('" + name +
                                    "') names parent " + std::to_string(target.parent) +
                                    " but lives in " + std::to_string(dir));
                        }
                        if (entry.type != target.type) {
                            problem(who + ": entry '" + name + "' has the wrong type hint");
                        }
                        check_snapshot_flags(dir, name, entry.inode);
                        if (target.type == static_cast<std::uint16_t>(InodeType::directory)) {
                            queue.push_back(entry.inode);
                        } else {
                            ++report_.files;
                        }
                    }
                }
            }
        }
        for (std::uint64_t ino = 1; ino < sb_.inode_count; ++ino) {
            if (inodes_[ino].type != 0 && references[ino] == 0) {
                problem("inode " + std::to_string(ino) +
                        " is in use but not in the directory tree");
            }
        }
    }

    // Snapshot trees live in /.snapshots (flag system): its entries are snapshot roots, and
    // everything below one is a snapshot inode; nothing else is.
    void check_snapshot_flags(std::uint64_t dir, const std::string& name, std::uint64_t ino) {
        const std::uint16_t parent = inodes_[dir].flags;
        const std::uint16_t flags = inodes_[ino].flags;
        const std::string who = "inode " + std::to_string(ino) + " ('" + name + "')";
        bool ok = true;
        if ((parent & inode_system) != 0) {
            ok = (flags & (inode_snapshot | inode_snapshot_root)) ==
                     (inode_snapshot | inode_snapshot_root) &&
                 inodes_[ino].type == static_cast<std::uint16_t>(InodeType::directory);
        } else if ((parent & inode_snapshot) != 0) {
            ok = (flags & inode_snapshot) != 0 &&
                 (flags & (inode_snapshot_root | inode_system | inode_snapshot_pending)) == 0;
        } else if (dir == kRootInode && name == kSnapshotDirectory) {
            ok = flags == inode_system || flags == 0; // 1.0 volumes may have a user one
        } else {
            ok = flags == 0;
        }
        if (!ok) {
            problem(who + ": snapshot flags do not fit its place in the tree");
        }
        if (flags != 0 && (sb_.incompat_features & kIncompatSnapshots) == 0 &&
            (flags & inode_system) == 0) {
            problem(who + ": a snapshot inode, but the snapshots feature is off");
        }
    }

    void compare_bitmap() {
        std::uint64_t free_blocks = 0;
        for (std::uint64_t k = 0; k < sb_.bitmap_blocks; ++k) {
            auto block = metadata(sb_.bitmap_start + k, BlockKind::bitmap);
            if (!block) {
                continue;
            }
            auto bm = load<BitmapBlock>(*block);
            const std::uint64_t first = k * kBitsPerBitmapBlock;
            const std::uint64_t count =
                std::min<std::uint64_t>(kBitsPerBitmapBlock, sb_.total_blocks - first);
            if (bm.first_block != first || bm.bit_count != count) {
                problem("bitmap block " + std::to_string(k) + ": wrong coverage");
                continue;
            }
            for (std::uint64_t i = 0; i < count; ++i) {
                const std::uint64_t b = first + i;
                const bool used = (bm.bits[i / 8] >> (i % 8)) & 1u;
                if (b < sb_.data_start || b >= sb_.data_end) {
                    if (!used) {
                        problem("bitmap: fixed metadata block " + std::to_string(b) +
                                " marked free");
                    }
                    continue;
                }
                if (!used) {
                    ++free_blocks;
                }
                if (used && claimed_[b] == unclaimed) {
                    problem("block " + std::to_string(b) +
                            " is allocated but owned by nothing (leak)");
                } else if (!used && claimed_[b] != unclaimed) {
                    problem("block " + std::to_string(b) + " is in use but marked free");
                }
            }
        }
        report_.free_blocks = free_blocks;
        if (free_blocks != sb_.free_blocks) {
            problem("superblock says " + std::to_string(sb_.free_blocks) +
                    " free blocks, the bitmap has " + std::to_string(free_blocks));
        }
    }

    BlockDevice& device_;
    CheckReport report_;
    std::size_t suppressed_ = 0;
    Superblock sb_{};
    std::map<std::uint64_t, Block> overlay_;
    std::vector<Claim> claimed_;
    std::uint64_t shared_claims_ = 0;
    std::vector<Inode> inodes_;
    std::unordered_map<std::uint64_t, std::vector<Extent>> extents_;
};

} // namespace

CheckReport check_volume(BlockDevice& device) {
    return Checker(device).run();
}

} // namespace godwit::csv
