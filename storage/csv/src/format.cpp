#include "godwit/csv/format.hpp"

#include <chrono>

#include <boost/crc.hpp>

#include "godwit/error.hpp"

namespace godwit::csv {

std::string_view to_string(BlockKind kind) noexcept {
    switch (kind) {
    case BlockKind::superblock:
        return "superblock";
    case BlockKind::lease:
        return "lease";
    case BlockKind::journal_descriptor:
        return "journal descriptor";
    case BlockKind::journal_commit:
        return "journal commit";
    case BlockKind::bitmap:
        return "bitmap";
    case BlockKind::inode_table:
        return "inode table";
    case BlockKind::directory:
        return "directory";
    case BlockKind::extent_map:
        return "extent map";
    }
    return "unknown";
}

// CRC-32C (Castagnoli): reflected, init and xorout 0xFFFFFFFF (as iSCSI, ext4, Btrfs).
using Crc32cEngine = boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true>;

std::uint32_t crc32c(std::span<const std::byte> data) noexcept {
    Crc32cEngine crc;
    crc.process_bytes(data.data(), data.size());
    return crc.checksum();
}

struct Crc32c::State {
    Crc32cEngine engine;
};
Crc32c::Crc32c() : state_(new State) {}
Crc32c::~Crc32c() {
    delete state_;
}
void Crc32c::update(std::span<const std::byte> data) noexcept {
    state_->engine.process_bytes(data.data(), data.size());
}
std::uint32_t Crc32c::value() const noexcept {
    return state_->engine.checksum();
}

namespace {
constexpr std::size_t kCrcOffset = offsetof(BlockHeader, crc32c);

std::uint32_t block_crc(const Block& block) {
    Block copy = block;
    std::memset(copy.data() + kCrcOffset, 0, sizeof(std::uint32_t));
    return crc32c(copy);
}
} // namespace

BlockHeader header_of(const Block& block) {
    return load<BlockHeader>(block);
}

void reseal_block(Block& block) {
    std::uint32_t crc = block_crc(block);
    std::memcpy(block.data() + kCrcOffset, &crc, sizeof crc);
}

void seal_block(Block& block, BlockKind kind, std::uint64_t block_number, std::uint64_t txn_seq) {
    BlockHeader h{};
    h.magic = kBlockMagic;
    h.kind = static_cast<std::uint16_t>(kind);
    h.version_major = kVersionMajor;
    h.block_number = block_number;
    h.txn_seq = txn_seq;
    store(block, h);
    reseal_block(block);
}

std::string block_problem(const Block& block, BlockKind kind, std::uint64_t block_number) {
    BlockHeader h = header_of(block);
    std::string where = std::string(to_string(kind)) + " block " + std::to_string(block_number);
    if (h.magic != kBlockMagic) {
        return where + ": bad magic (not a CSV metadata block)";
    }
    if (h.kind != static_cast<std::uint16_t>(kind)) {
        return where + ": holds a block of kind " + std::to_string(h.kind);
    }
    if (h.version_major != kVersionMajor) {
        return where + ": format version " + std::to_string(h.version_major) + " is not supported";
    }
    if (h.block_number != block_number) {
        return where + ": claims to be block " + std::to_string(h.block_number) +
               " (misdirected write)";
    }
    if (h.crc32c != block_crc(block)) {
        return where + ": checksum mismatch";
    }
    return {};
}

void validate_block(const Block& block, BlockKind kind, std::uint64_t block_number) {
    std::string problem = block_problem(block, kind, block_number);
    if (!problem.empty()) {
        throw Error(ErrorCode::invalid_input, problem);
    }
}

std::string superblock_problem(const Superblock& sb, std::uint64_t device_blocks) {
    if (sb.version_major != kVersionMajor) {
        return "superblock: format version " + std::to_string(sb.version_major) + "." +
               std::to_string(sb.version_minor) + " is not supported (this reader knows " +
               std::to_string(kVersionMajor) + ".x)";
    }
    if (sb.block_size != kBlockSize) {
        return "superblock: block size " + std::to_string(sb.block_size) + " is not supported";
    }
    if ((sb.incompat_features & ~kKnownIncompatFeatures) != 0) {
        return "superblock: unknown incompatible features set";
    }
    if (sb.total_blocks < 8 || sb.total_blocks > device_blocks) {
        return "superblock: volume of " + std::to_string(sb.total_blocks) +
               " blocks does not fit the device of " + std::to_string(device_blocks) + " blocks";
    }
    // Layout: superblock | lease | journal | bitmap | inode table | data | backup superblock.
    if (sb.lease_block != 1 || sb.journal_start != 2 || sb.journal_blocks < 3 ||
        sb.journal_blocks > kJournalMaxTargets + 2 ||
        sb.bitmap_start != sb.journal_start + sb.journal_blocks ||
        sb.bitmap_blocks != (sb.total_blocks + kBitsPerBitmapBlock - 1) / kBitsPerBitmapBlock ||
        sb.inode_table_start != sb.bitmap_start + sb.bitmap_blocks || sb.inode_table_blocks == 0 ||
        sb.inode_table_blocks > sb.total_blocks ||
        sb.inode_count != sb.inode_table_blocks * kInodesPerBlock ||
        sb.data_start != sb.inode_table_start + sb.inode_table_blocks ||
        sb.data_end != sb.total_blocks - 1 || sb.data_start >= sb.data_end) {
        return "superblock: inconsistent layout";
    }
    if (sb.root_inode != kRootInode) {
        return "superblock: root inode is not 1";
    }
    if (sb.free_blocks > sb.data_end - sb.data_start || sb.free_inodes >= sb.inode_count) {
        return "superblock: free counts exceed the volume";
    }
    return {};
}

bool valid_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > kMaxNameLength || name == "." || name == "..") {
        return false;
    }
    for (char c : name) {
        if (c == '/' || c == '\0') {
            return false;
        }
    }
    return true;
}

std::string entry_name(const DirectoryEntry& entry) {
    std::size_t n = entry.name_length <= kMaxNameLength ? entry.name_length : 0;
    return std::string(entry.name.data(), n);
}

std::uint64_t now_unix_ns() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

} // namespace godwit::csv
