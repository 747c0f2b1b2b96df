// The metadata journal (docs/csv-format.md §5): physical redo of whole metadata blocks.
//
// A transaction is [descriptor][data blocks...][commit] at the start of the journal area,
// written with one flush; it is committed once its commit record (whose CRC covers the
// descriptor and every data block) is durable. The blocks are then written home and
// flushed before the next transaction may overwrite the journal, so the journal only ever
// holds the newest transaction and replaying it (again) is idempotent.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "godwit/csv/block_device.hpp"
#include "godwit/csv/format.hpp"

namespace godwit::csv {

struct JournalLayout {
    std::uint64_t start = 0;        // descriptor block
    std::uint64_t blocks = 0;       // size of the journal area
    std::uint64_t total_blocks = 0; // volume size: replay never writes outside it
    // Most blocks one transaction may carry.
    std::size_t capacity() const noexcept;
};

struct JournalTransaction {
    std::uint64_t seq = 0;
    std::map<std::uint64_t, Block> blocks; // home location -> sealed metadata block
};

// Writes `txn` (blocks already sealed with txn.seq) into the journal and flushes: after
// this returns the transaction is committed. Then writes every block home and flushes.
void journal_commit(BlockDevice& device, const JournalLayout& layout,
                    const JournalTransaction& txn);

// The committed transaction in the journal, if any (torn or absent yields nullopt).
// Throws Error(invalid_input) for a committed-looking transaction that targets blocks
// outside the volume or inside the journal (a hostile image).
std::optional<JournalTransaction> journal_read(BlockDevice& device, const JournalLayout& layout);

// Writes the committed transaction home again (idempotent) and returns its seq.
std::optional<std::uint64_t> journal_replay(BlockDevice& device, const JournalLayout& layout);

// Reads one block; throws on I/O errors.
Block read_block(BlockDevice& device, std::uint64_t block_number);
void write_block(BlockDevice& device, std::uint64_t block_number, const Block& block);

} // namespace godwit::csv
