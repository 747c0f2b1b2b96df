// On-disk format of a Godwit cluster shared volume, version 1.0 (docs/csv-format.md).
//
// Every structure is little-endian with explicit sizes. Every metadata block starts with a
// BlockHeader whose CRC32C covers the whole block; readers validate the header and every
// field before use, so a corrupt or hostile image yields Error(invalid_input), never an
// out-of-bounds access.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace godwit::csv {

static_assert(std::endian::native == std::endian::little,
              "the CSV format is little-endian and is read by plain loads");

inline constexpr std::uint32_t kBlockSize = 4096;
inline constexpr std::uint32_t kBlockMagic = 0x56534347; // "GCSV"
inline constexpr std::uint16_t kVersionMajor = 1;
inline constexpr std::uint16_t kVersionMinor = 1; // 1.1: snapshots (§12)
inline constexpr std::uint64_t kRootInode = 1;
inline constexpr std::size_t kMaxNameLength = 255;

using Block = std::array<std::byte, kBlockSize>;

enum class BlockKind : std::uint16_t {
    superblock = 1,
    lease = 2,
    journal_descriptor = 3,
    journal_commit = 4,
    bitmap = 5,
    inode_table = 6,
    directory = 7,
    extent_map = 8,
};
std::string_view to_string(BlockKind kind) noexcept;

// docs/csv-format.md §2: the header of every metadata block.
struct BlockHeader {
    std::uint32_t magic;         // kBlockMagic
    std::uint16_t kind;          // BlockKind
    std::uint16_t version_major; // kVersionMajor
    std::uint64_t block_number;  // the block's own home location (catches misdirected I/O)
    std::uint64_t txn_seq;       // journal transaction that last wrote this block
    std::uint32_t crc32c;        // CRC32C of the whole block with this field zero
    std::uint32_t reserved;
};
static_assert(sizeof(BlockHeader) == 32);

inline constexpr std::size_t kPayloadSize = kBlockSize - sizeof(BlockHeader);

// §3: block 0 and (backup) block total_blocks-1.
struct Superblock {
    BlockHeader header;
    std::uint16_t version_major;
    std::uint16_t version_minor;
    std::uint32_t block_size;
    std::uint64_t total_blocks;
    std::array<std::uint8_t, 16> uuid;
    std::array<char, 64> label; // NUL-padded UTF-8
    std::uint64_t lease_block;
    std::uint64_t journal_start;
    std::uint64_t journal_blocks;
    std::uint64_t bitmap_start;
    std::uint64_t bitmap_blocks;
    std::uint64_t inode_table_start;
    std::uint64_t inode_table_blocks;
    std::uint64_t inode_count;
    std::uint64_t data_start;
    std::uint64_t data_end; // exclusive; == backup superblock location
    std::uint64_t root_inode;
    std::uint64_t created_unix_ns;
    std::uint64_t incompat_features; // a reader refuses any bit it does not know
    std::uint64_t ro_compat_features;
    std::uint64_t compat_features;
    // Dynamic fields, rewritten by every transaction.
    std::uint64_t free_blocks;
    std::uint64_t free_inodes;
    std::uint64_t snapshot_generation; // snapshots taken so far (1.1; 0 in 1.0)
};
static_assert(sizeof(Superblock) == 272);

// §4: the coordinator-ownership lease (fences metadata writers).
struct LeaseBlock {
    BlockHeader header;
    std::uint64_t owner_node_id; // 0 = nobody
    std::uint64_t generation;    // +1 on every change of owner
    std::uint64_t heartbeat_counter;
    std::uint64_t heartbeat_unix_ns;
    std::uint32_t lease_duration_ms;
    std::uint32_t state; // LeaseState
    std::array<char, 64> owner_name;
};
static_assert(sizeof(LeaseBlock) == 136);
enum class LeaseState : std::uint32_t { free = 0, held = 1 };

// §5: the journal.
inline constexpr std::size_t kJournalMaxTargets = (kPayloadSize - 16) / 8;
struct JournalDescriptor {
    BlockHeader header;
    std::uint64_t seq;
    std::uint32_t block_count;
    std::uint32_t reserved;
    std::array<std::uint64_t, kJournalMaxTargets> targets;
};
static_assert(sizeof(JournalDescriptor) <= kBlockSize);
static_assert(kJournalMaxTargets == 506);

struct JournalCommit {
    BlockHeader header;
    std::uint64_t seq;
    std::uint32_t block_count;
    std::uint32_t data_crc32c; // CRC32C over the descriptor block then each data block
};
static_assert(sizeof(JournalCommit) == 48);

// §6: allocation bitmap; bit i of block k covers volume block k*kBitsPerBitmapBlock + i.
inline constexpr std::size_t kBitmapBytes = kPayloadSize - 16;
inline constexpr std::uint64_t kBitsPerBitmapBlock = kBitmapBytes * 8;
struct BitmapBlock {
    BlockHeader header;
    std::uint64_t first_block;
    std::uint32_t bit_count;
    std::uint32_t reserved;
    std::array<std::uint8_t, kBitmapBytes> bits;
};
static_assert(sizeof(BitmapBlock) == kBlockSize);

// §7: extents and inodes.
enum ExtentFlags : std::uint32_t {
    extent_unwritten = 1u << 0, // reserved: allocated, reads as zeros (not set by v1.0)
};
struct Extent {
    std::uint64_t logical;  // first file block
    std::uint64_t physical; // first volume block
    std::uint32_t length;   // blocks, >= 1
    std::uint32_t flags;    // ExtentFlags; other bits reserved (0)
};
static_assert(sizeof(Extent) == 24);

enum class InodeType : std::uint16_t { free = 0, file = 1, directory = 2 };

// Inode.flags (format 1.1, docs/csv-format.md §12).
enum InodeFlags : std::uint16_t {
    inode_snapshot = 1u << 0,         // part of a snapshot: read-only, data blocks shared
    inode_snapshot_root = 1u << 1,    // the root directory of one snapshot
    inode_snapshot_pending = 1u << 2, // a snapshot root being taken or released
    inode_system = 1u << 3,           // /.snapshots itself
};
inline constexpr std::uint16_t kKnownInodeFlags =
    inode_snapshot | inode_snapshot_root | inode_snapshot_pending | inode_system;

// Superblock incompat_features: data blocks may be shared by several files (snapshots
// exist); a reader that does not know it would free shared blocks.
inline constexpr std::uint64_t kIncompatSnapshots = 1u << 0;
inline constexpr std::uint64_t kKnownIncompatFeatures = kIncompatSnapshots;
// The directory in the volume root that holds one directory per snapshot.
inline constexpr std::string_view kSnapshotDirectory = ".snapshots";

inline constexpr std::size_t kInlineExtents = 7;
struct Inode {
    std::uint16_t type; // InodeType
    std::uint16_t flags;
    std::uint32_t reserved0;
    std::uint64_t generation; // +1 each time the slot is reused: stale handles/maps fail
    std::uint64_t parent;
    std::uint64_t size; // bytes (directories: dirent blocks * kBlockSize)
    std::uint64_t allocated_blocks;
    std::uint64_t ctime_unix_ns;
    std::uint64_t mtime_unix_ns;
    std::uint32_t extent_count; // total, inline first
    std::uint32_t reserved1;
    std::uint64_t extent_block; // first overflow ExtentMapBlock, 0 = none
    std::array<Extent, kInlineExtents> extents;
    std::array<std::uint8_t, 16> reserved2;
};
static_assert(sizeof(Inode) == 256);

inline constexpr std::size_t kInodesPerBlock = kPayloadSize / sizeof(Inode);
static_assert(kInodesPerBlock == 15);
struct InodeTableBlock {
    BlockHeader header;
    std::array<Inode, kInodesPerBlock> inodes;
};
static_assert(sizeof(InodeTableBlock) <= kBlockSize);

inline constexpr std::size_t kExtentsPerMapBlock = (kPayloadSize - 24) / sizeof(Extent);
struct ExtentMapBlock {
    BlockHeader header;
    std::uint64_t owner_inode;
    std::uint64_t next_block; // 0 = last
    std::uint32_t count;
    std::uint32_t reserved;
    std::array<Extent, kExtentsPerMapBlock> extents;
};
static_assert(sizeof(ExtentMapBlock) <= kBlockSize);
static_assert(kExtentsPerMapBlock == 168);

// §8: directories.
struct DirectoryEntry {
    std::uint64_t inode; // 0 = empty slot
    std::uint16_t name_length;
    std::uint8_t type; // InodeType of the target (a hint; the inode is authoritative)
    std::array<std::uint8_t, 5> reserved;
    std::array<char, 256> name; // name_length bytes, NUL-padded
};
static_assert(sizeof(DirectoryEntry) == 272);

inline constexpr std::size_t kEntriesPerDirectoryBlock =
    (kPayloadSize - 16) / sizeof(DirectoryEntry);
static_assert(kEntriesPerDirectoryBlock == 14);
struct DirectoryBlock {
    BlockHeader header;
    std::uint64_t owner_inode;
    std::uint64_t reserved;
    std::array<DirectoryEntry, kEntriesPerDirectoryBlock> entries;
};
static_assert(sizeof(DirectoryBlock) <= kBlockSize);

// --- block (de)serialisation -------------------------------------------------------------

std::uint32_t crc32c(std::span<const std::byte> data) noexcept;

// Incremental CRC32C over several buffers (equals crc32c of their concatenation).
class Crc32c {
  public:
    Crc32c();
    ~Crc32c();
    Crc32c(const Crc32c&) = delete;
    Crc32c& operator=(const Crc32c&) = delete;
    void update(std::span<const std::byte> data) noexcept;
    std::uint32_t value() const noexcept;

  private:
    struct State;
    State* state_;
};

// Fills the header (magic, kind, version, location, seq) and the CRC of `block`.
void seal_block(Block& block, BlockKind kind, std::uint64_t block_number, std::uint64_t txn_seq);
// Recomputes only the CRC (the header's other fields already set).
void reseal_block(Block& block);
// Why `block` is not a valid metadata block of `kind` at `block_number`; empty when it is.
std::string block_problem(const Block& block, BlockKind kind, std::uint64_t block_number);
// Throws Error(invalid_input) naming the problem.
void validate_block(const Block& block, BlockKind kind, std::uint64_t block_number);

template <typename T>
T load(const Block& block) {
    static_assert(sizeof(T) <= kBlockSize);
    T value;
    std::memcpy(&value, block.data(), sizeof(T));
    return value;
}
template <typename T>
void store(Block& block, const T& value) {
    static_assert(sizeof(T) <= kBlockSize);
    std::memcpy(block.data(), &value, sizeof(T));
}
BlockHeader header_of(const Block& block);

// Why the superblock's layout is unusable on a device of `device_blocks`; empty when fine.
std::string superblock_problem(const Superblock& sb, std::uint64_t device_blocks);

// Valid directory entry name: 1..255 bytes, no '/', no NUL, not "." or "..".
bool valid_name(std::string_view name) noexcept;
std::string entry_name(const DirectoryEntry& entry); // caller validated name_length

std::uint64_t now_unix_ns() noexcept;

} // namespace godwit::csv
