// format_volume: writes an empty volume (docs/csv-format.md §3). The journal is cleared
// first, so no transaction of an earlier volume can replay onto the new one.
#include <algorithm>
#include <random>

#include "godwit/csv/journal.hpp"
#include "godwit/csv/lease.hpp"
#include "godwit/csv/volume.hpp"
#include "godwit/error.hpp"

namespace godwit::csv {

Superblock format_volume(BlockDevice& device, const FormatOptions& options) {
    const std::uint64_t device_blocks = device.size() / kBlockSize;
    std::uint64_t total = options.size_bytes == 0 ? device_blocks : options.size_bytes / kBlockSize;
    if (total > device_blocks) {
        throw Error(ErrorCode::usage,
                    "volume size exceeds the device (" + std::to_string(device.size()) + " bytes)");
    }
    if (options.label.size() >= 64) {
        throw Error(ErrorCode::usage, "label longer than 63 bytes");
    }
    std::uint64_t journal = options.journal_blocks;
    if (journal == 0) {
        journal = std::clamp<std::uint64_t>(total / 16, 16, kJournalMaxTargets + 2);
    }
    if (journal < 8 || journal > kJournalMaxTargets + 2) {
        throw Error(ErrorCode::usage,
                    "journal must be 8.." + std::to_string(kJournalMaxTargets + 2) + " blocks");
    }
    std::uint64_t inodes = options.inode_count;
    if (inodes == 0) {
        inodes = std::clamp<std::uint64_t>(total / 256, 64, 65535);
    }
    Superblock sb{};
    sb.version_major = kVersionMajor;
    sb.version_minor = kVersionMinor;
    sb.block_size = kBlockSize;
    sb.total_blocks = total;
    std::random_device rd;
    for (auto& b : sb.uuid) {
        b = static_cast<std::uint8_t>(rd());
    }
    std::memcpy(sb.label.data(), options.label.data(), options.label.size());
    sb.lease_block = 1;
    sb.journal_start = 2;
    sb.journal_blocks = journal;
    sb.bitmap_start = sb.journal_start + journal;
    sb.bitmap_blocks = (total + kBitsPerBitmapBlock - 1) / kBitsPerBitmapBlock;
    sb.inode_table_start = sb.bitmap_start + sb.bitmap_blocks;
    sb.inode_table_blocks = (inodes + kInodesPerBlock - 1) / kInodesPerBlock;
    sb.inode_count = sb.inode_table_blocks * kInodesPerBlock;
    sb.data_start = sb.inode_table_start + sb.inode_table_blocks;
    sb.data_end = total - 1;
    sb.root_inode = kRootInode;
    sb.created_unix_ns = now_unix_ns();
    if (total < 16 || sb.data_start + 4 > sb.data_end) {
        throw Error(ErrorCode::usage,
                    "device too small for a CSV volume (" + std::to_string(total) + " blocks)");
    }
    sb.free_blocks = sb.data_end - sb.data_start;
    sb.free_inodes = sb.inode_count - 2; // inode 0 is reserved, 1 is the root

    // Journal first: an old transaction must never replay onto the new volume.
    Block zero{};
    for (std::uint64_t b = sb.journal_start; b < sb.journal_start + journal; ++b) {
        write_block(device, b, zero);
    }
    write_block(device, sb.lease_block, initial_lease_block(sb.lease_block));
    for (std::uint64_t k = 0; k < sb.bitmap_blocks; ++k) {
        Block block{};
        BitmapBlock bm{};
        bm.first_block = k * kBitsPerBitmapBlock;
        bm.bit_count = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(kBitsPerBitmapBlock, total - bm.first_block));
        for (std::uint32_t i = 0; i < bm.bit_count; ++i) {
            std::uint64_t b = bm.first_block + i;
            if (b < sb.data_start || b >= sb.data_end) {
                bm.bits[i / 8] |= static_cast<std::uint8_t>(1u << (i % 8));
            }
        }
        store(block, bm);
        seal_block(block, BlockKind::bitmap, sb.bitmap_start + k, 1);
        write_block(device, sb.bitmap_start + k, block);
    }
    const std::uint64_t now = now_unix_ns();
    for (std::uint64_t k = 0; k < sb.inode_table_blocks; ++k) {
        Block block{};
        InodeTableBlock table{};
        if (k == 0) {
            Inode& root = table.inodes[kRootInode];
            root.type = static_cast<std::uint16_t>(InodeType::directory);
            root.generation = 1;
            root.parent = kRootInode;
            root.ctime_unix_ns = now;
            root.mtime_unix_ns = now;
        }
        store(block, table);
        seal_block(block, BlockKind::inode_table, sb.inode_table_start + k, 1);
        write_block(device, sb.inode_table_start + k, block);
    }
    Block backup{};
    store(backup, sb);
    seal_block(backup, BlockKind::superblock, sb.data_end, 1);
    write_block(device, sb.data_end, backup);
    device.flush();
    Block primary{};
    store(primary, sb);
    seal_block(primary, BlockKind::superblock, 0, 1);
    write_block(device, 0, primary);
    device.flush();
    return load<Superblock>(primary);
}

} // namespace godwit::csv
