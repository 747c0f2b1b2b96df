#include <gtest/gtest.h>

#include <cstring>
#include <string_view>

#include "godwit/csv/format.hpp"
#include "godwit/error.hpp"

using namespace godwit::csv;

TEST(CsvFormat, Crc32cMatchesTheCastagnoliCheckValue) {
    std::string_view text = "123456789";
    EXPECT_EQ(crc32c(std::as_bytes(std::span(text.data(), text.size()))), 0xE3069283u);
    Crc32c incremental;
    incremental.update(std::as_bytes(std::span(text.data(), 4)));
    incremental.update(std::as_bytes(std::span(text.data() + 4, 5)));
    EXPECT_EQ(incremental.value(), 0xE3069283u);
}

TEST(CsvFormat, StructureLayoutIsFixed) {
    EXPECT_EQ(offsetof(BlockHeader, crc32c), 24u);
    EXPECT_EQ(offsetof(Superblock, total_blocks), 40u);
    EXPECT_EQ(offsetof(Superblock, journal_blocks), 144u); // tests/csv/cli_test.sh reads it
    EXPECT_EQ(offsetof(Superblock, free_blocks), 248u);
    EXPECT_EQ(offsetof(Inode, extents), 72u);
    EXPECT_EQ(offsetof(DirectoryEntry, name), 16u);
    EXPECT_EQ(offsetof(LeaseBlock, owner_name), 72u);
    EXPECT_EQ(kInodesPerBlock, 15u);
    EXPECT_EQ(kEntriesPerDirectoryBlock, 14u);
    EXPECT_EQ(kBitsPerBitmapBlock, 32384u);
}

TEST(CsvFormat, SealedBlockValidatesAndEveryBitFlipIsCaught) {
    Block block{};
    Inode inode{};
    inode.type = 1;
    inode.size = 12345;
    std::memcpy(block.data() + sizeof(BlockHeader), &inode, sizeof inode);
    seal_block(block, BlockKind::inode_table, 42, 7);
    EXPECT_EQ(block_problem(block, BlockKind::inode_table, 42), "");
    EXPECT_EQ(header_of(block).txn_seq, 7u);
    EXPECT_NE(block_problem(block, BlockKind::bitmap, 42), "");
    EXPECT_NE(block_problem(block, BlockKind::inode_table, 43).find("misdirected"),
              std::string::npos);
    for (std::size_t byte : {0u, 9u, 30u, 100u, 4095u}) {
        Block bad = block;
        bad[byte] ^= std::byte{0x10};
        EXPECT_NE(block_problem(bad, BlockKind::inode_table, 42), "") << "byte " << byte;
    }
    EXPECT_THROW(validate_block(Block{}, BlockKind::superblock, 0), godwit::Error);
}

TEST(CsvFormat, NamesFollowTheRules) {
    EXPECT_TRUE(valid_name("disk.vhd"));
    EXPECT_TRUE(valid_name(std::string(255, 'a')));
    EXPECT_FALSE(valid_name(std::string(256, 'a')));
    EXPECT_FALSE(valid_name(""));
    EXPECT_FALSE(valid_name("."));
    EXPECT_FALSE(valid_name(".."));
    EXPECT_FALSE(valid_name("a/b"));
    EXPECT_FALSE(valid_name(std::string("a\0b", 3)));
}

TEST(CsvFormat, SuperblockLayoutChecksRejectNonsense) {
    Superblock sb{};
    EXPECT_NE(superblock_problem(sb, 1000), "");
    sb.version_major = kVersionMajor;
    sb.block_size = kBlockSize;
    sb.total_blocks = 1000;
    sb.lease_block = 1;
    sb.journal_start = 2;
    sb.journal_blocks = 62;
    sb.bitmap_start = 64;
    sb.bitmap_blocks = 1;
    sb.inode_table_start = 65;
    sb.inode_table_blocks = 5;
    sb.inode_count = 75;
    sb.data_start = 70;
    sb.data_end = 999;
    sb.root_inode = 1;
    sb.free_blocks = 929;
    sb.free_inodes = 73;
    EXPECT_EQ(superblock_problem(sb, 1000), "");
    EXPECT_NE(superblock_problem(sb, 999), ""); // does not fit the device
    Superblock bad = sb;
    bad.data_start = 5000;
    EXPECT_NE(superblock_problem(bad, 1000), "");
    bad = sb;
    bad.incompat_features = 1u << 1; // bit 0 is snapshots (1.1)
    EXPECT_NE(superblock_problem(bad, 1000), "");
    bad = sb;
    bad.free_blocks = 930;
    EXPECT_NE(superblock_problem(bad, 1000), "");
}
