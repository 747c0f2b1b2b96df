#include <gtest/gtest.h>

#include "godwit/csv/journal.hpp"
#include "godwit/error.hpp"

using namespace godwit::csv;

namespace {
constexpr JournalLayout kLayout{2, 10, 64};

Block meta(std::uint64_t home, std::uint64_t seq, std::uint8_t fill) {
    Block b{};
    std::memset(b.data() + sizeof(BlockHeader), fill, 100);
    seal_block(b, BlockKind::bitmap, home, seq);
    return b;
}
} // namespace

TEST(CsvJournal, CommitWritesHomeAndLeavesAReplayableTransaction) {
    MemoryBlockDevice dev(64 * kBlockSize);
    JournalTransaction txn{5, {{20, meta(20, 5, 0xAA)}, {30, meta(30, 5, 0xBB)}}};
    journal_commit(dev, kLayout, txn);
    EXPECT_EQ(read_block(dev, 20), txn.blocks.at(20));
    EXPECT_EQ(read_block(dev, 30), txn.blocks.at(30));
    EXPECT_GE(dev.flushes(), 2u);
    auto again = journal_read(dev, kLayout);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->seq, 5u);
    EXPECT_EQ(again->blocks, txn.blocks);
    // Replay is idempotent: home blocks lost, replay twice, same result.
    write_block(dev, 20, Block{});
    EXPECT_EQ(journal_replay(dev, kLayout), 5u);
    EXPECT_EQ(journal_replay(dev, kLayout), 5u);
    EXPECT_EQ(read_block(dev, 20), txn.blocks.at(20));
}

TEST(CsvJournal, TornTransactionsAreNotReplayed) {
    MemoryBlockDevice dev(64 * kBlockSize);
    EXPECT_FALSE(journal_read(dev, kLayout)); // empty journal
    JournalTransaction txn{9, {{20, meta(20, 9, 1)}, {21, meta(21, 9, 2)}, {22, meta(22, 9, 3)}}};
    journal_commit(dev, kLayout, txn);
    // A data block torn (the commit CRC covers it).
    Block torn = read_block(dev, kLayout.start + 2);
    torn[2000] ^= std::byte{1};
    write_block(dev, kLayout.start + 2, torn);
    EXPECT_FALSE(journal_read(dev, kLayout));
    // A newer, shorter descriptor over an older commit record: seq mismatch.
    MemoryBlockDevice dev2(64 * kBlockSize);
    journal_commit(dev2, kLayout, txn);
    Block descriptor{};
    JournalDescriptor d{};
    d.seq = 10;
    d.block_count = 3;
    d.targets[0] = 20;
    d.targets[1] = 21;
    d.targets[2] = 22;
    store(descriptor, d);
    seal_block(descriptor, BlockKind::journal_descriptor, kLayout.start, 10);
    write_block(dev2, kLayout.start, descriptor);
    EXPECT_FALSE(journal_read(dev2, kLayout));
}

TEST(CsvJournal, HostileTargetsAreRejected) {
    MemoryBlockDevice dev(64 * kBlockSize);
    // A well-formed transaction whose target lies inside the journal itself.
    JournalTransaction txn{3, {{5, meta(5, 3, 1)}}};
    journal_commit(dev, JournalLayout{2, 10, 64}, JournalTransaction{3, {{40, meta(40, 3, 1)}}});
    Block d = read_block(dev, 2);
    auto desc = load<JournalDescriptor>(d);
    desc.targets[0] = 5;
    store(d, desc);
    reseal_block(d);
    write_block(dev, 2, d);
    // The commit CRC covers the descriptor: recompute it as an attacker would.
    Crc32c crc;
    crc.update(d);
    crc.update(read_block(dev, 3));
    Block c = read_block(dev, 4);
    auto commit = load<JournalCommit>(c);
    commit.data_crc32c = crc.value();
    store(c, commit);
    reseal_block(c);
    write_block(dev, 4, c);
    EXPECT_THROW(journal_read(dev, kLayout), godwit::Error);
    EXPECT_THROW(journal_commit(dev, kLayout,
                                JournalTransaction{4,
                                                   [] {
                                                       std::map<std::uint64_t, Block> m;
                                                       for (std::uint64_t i = 0; i < 9; ++i) {
                                                           m[20 + i] = meta(20 + i, 4, 0);
                                                       }
                                                       return m;
                                                   }()}),
                 godwit::Error); // 9 blocks > capacity 8
}
