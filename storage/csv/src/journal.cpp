#include "godwit/csv/journal.hpp"

#include <algorithm>

#include "godwit/error.hpp"

namespace godwit::csv {

std::size_t JournalLayout::capacity() const noexcept {
    return blocks < 3 ? 0 : std::min<std::size_t>(blocks - 2, kJournalMaxTargets);
}

Block read_block(BlockDevice& device, std::uint64_t block_number) {
    AlignedBuffer buffer(kBlockSize);
    if (block_number >= device.size() / kBlockSize) {
        throw Error(ErrorCode::invalid_input,
                    "block " + std::to_string(block_number) + " is beyond the device");
    }
    device.read(block_number * kBlockSize, buffer.span());
    Block block;
    std::memcpy(block.data(), buffer.data(), kBlockSize);
    return block;
}

void write_block(BlockDevice& device, std::uint64_t block_number, const Block& block) {
    AlignedBuffer buffer(kBlockSize);
    std::memcpy(buffer.data(), block.data(), kBlockSize);
    device.write(block_number * kBlockSize, buffer.span());
}

void journal_commit(BlockDevice& device, const JournalLayout& layout,
                    const JournalTransaction& txn) {
    const std::size_t n = txn.blocks.size();
    if (n == 0) {
        return;
    }
    if (n > layout.capacity()) {
        throw Error(ErrorCode::internal, "journal transaction of " + std::to_string(n) +
                                             " blocks exceeds the journal capacity");
    }
    // One contiguous write: descriptor, data blocks, commit record.
    AlignedBuffer area((n + 2) * kBlockSize);
    Block descriptor_block{};
    JournalDescriptor descriptor{};
    descriptor.seq = txn.seq;
    descriptor.block_count = static_cast<std::uint32_t>(n);
    std::size_t i = 0;
    for (const auto& [home, block] : txn.blocks) {
        descriptor.targets[i++] = home;
    }
    store(descriptor_block, descriptor);
    seal_block(descriptor_block, BlockKind::journal_descriptor, layout.start, txn.seq);
    Crc32c crc;
    crc.update(descriptor_block);
    std::memcpy(area.data(), descriptor_block.data(), kBlockSize);
    i = 1;
    for (const auto& [home, block] : txn.blocks) {
        crc.update(block);
        std::memcpy(area.data() + i * kBlockSize, block.data(), kBlockSize);
        ++i;
    }
    Block commit_block{};
    JournalCommit commit{};
    commit.seq = txn.seq;
    commit.block_count = static_cast<std::uint32_t>(n);
    commit.data_crc32c = crc.value();
    store(commit_block, commit);
    seal_block(commit_block, BlockKind::journal_commit, layout.start + n + 1, txn.seq);
    std::memcpy(area.data() + (n + 1) * kBlockSize, commit_block.data(), kBlockSize);
    device.write(layout.start * kBlockSize, area.span());
    device.flush(); // committed
    for (const auto& [home, block] : txn.blocks) {
        write_block(device, home, block);
    }
    device.flush(); // checkpointed: the next transaction may reuse the journal
}

std::optional<JournalTransaction> journal_read(BlockDevice& device, const JournalLayout& layout) {
    if (layout.capacity() == 0 || layout.start + layout.blocks > layout.total_blocks) {
        throw Error(ErrorCode::invalid_input, "journal area does not fit the volume");
    }
    Block descriptor_block = read_block(device, layout.start);
    if (!block_problem(descriptor_block, BlockKind::journal_descriptor, layout.start).empty()) {
        return std::nullopt; // never written, or torn
    }
    auto descriptor = load<JournalDescriptor>(descriptor_block);
    const std::size_t n = descriptor.block_count;
    if (n == 0 || n > layout.capacity() || descriptor.seq != descriptor.header.txn_seq) {
        return std::nullopt;
    }
    const std::uint64_t commit_location = layout.start + n + 1;
    Block commit_block = read_block(device, commit_location);
    if (!block_problem(commit_block, BlockKind::journal_commit, commit_location).empty()) {
        return std::nullopt;
    }
    auto commit = load<JournalCommit>(commit_block);
    if (commit.seq != descriptor.seq || commit.block_count != n) {
        return std::nullopt; // a commit record left over from an older transaction
    }
    JournalTransaction txn;
    txn.seq = descriptor.seq;
    Crc32c crc;
    crc.update(descriptor_block);
    for (std::size_t i = 0; i < n; ++i) {
        Block data = read_block(device, layout.start + 1 + i);
        crc.update(data);
        txn.blocks[descriptor.targets[i]] = data;
    }
    if (crc.value() != commit.data_crc32c) {
        return std::nullopt; // torn: the transaction never committed
    }
    // A committed transaction: its targets must be metadata blocks inside the volume.
    if (txn.blocks.size() != n) {
        throw Error(ErrorCode::invalid_input, "journal transaction names one block twice");
    }
    for (const auto& [home, block] : txn.blocks) {
        if (home >= layout.total_blocks ||
            (home >= layout.start && home < layout.start + layout.blocks)) {
            throw Error(ErrorCode::invalid_input, "journal transaction " + std::to_string(txn.seq) +
                                                      " targets block " + std::to_string(home) +
                                                      " outside the metadata area");
        }
        BlockHeader h = header_of(block);
        if (h.magic != kBlockMagic || h.block_number != home || h.txn_seq != txn.seq ||
            !block_problem(block, static_cast<BlockKind>(h.kind), home).empty()) {
            throw Error(ErrorCode::invalid_input, "journal transaction " + std::to_string(txn.seq) +
                                                      " carries a malformed block for " +
                                                      std::to_string(home));
        }
    }
    return txn;
}

std::optional<std::uint64_t> journal_replay(BlockDevice& device, const JournalLayout& layout) {
    auto txn = journal_read(device, layout);
    if (!txn) {
        return std::nullopt;
    }
    for (const auto& [home, block] : txn->blocks) {
        write_block(device, home, block);
    }
    device.flush();
    return txn->seq;
}

} // namespace godwit::csv
