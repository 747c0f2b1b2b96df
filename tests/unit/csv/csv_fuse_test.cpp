// The FUSE namespace's pure parts (docs/csv-namespace.md): the errno each volume error maps
// to, and the capacity statfs reads from the superblock on the LUN.
#include <gtest/gtest.h>

#include <cerrno>

#include "godwit/csv/csv_fuse.hpp"
#include "godwit/csv/volume.hpp"

namespace godwit::csv {
namespace {

int errno_of(ErrorCode code, const std::string& message, int conflict_errno = EEXIST) {
    return errno_for(Error(code, message), conflict_errno);
}

TEST(CsvFuseErrno, EachCodeHasItsErrno) {
    EXPECT_EQ(errno_of(ErrorCode::not_found, "no such file or directory: /a"), ENOENT);
    EXPECT_EQ(errno_of(ErrorCode::usage, "the root directory cannot be the target"), EINVAL);
    EXPECT_EQ(errno_of(ErrorCode::io, "pwrite: Input/output error"), EIO);
    EXPECT_EQ(errno_of(ErrorCode::timeout, "no coordinator"), ETIMEDOUT);
    EXPECT_EQ(errno_of(ErrorCode::cancelled, "the CSV node is shutting down"), ESHUTDOWN);
    EXPECT_EQ(errno_of(ErrorCode::unsupported, "x"), EOPNOTSUPP);
    EXPECT_EQ(errno_of(ErrorCode::protocol, "x"), EPROTO);
    EXPECT_EQ(errno_of(ErrorCode::internal, "x"), EIO);
    EXPECT_EQ(errno_of(ErrorCode::invalid_input, "invalid name 'a/b'"), EINVAL);
    EXPECT_EQ(errno_of(ErrorCode::invalid_input, "bad CRC in block 7"), EIO);
}

TEST(CsvFuseErrno, ConflictMeansWhatTheCallSays) {
    EXPECT_EQ(errno_of(ErrorCode::conflict, "/a already exists", EEXIST), EEXIST);
    EXPECT_EQ(errno_of(ErrorCode::conflict, "/d is not empty", ENOTEMPTY), ENOTEMPTY);
    EXPECT_EQ(errno_of(ErrorCode::conflict, "/f is open", EBUSY), EBUSY);
    EXPECT_EQ(errno_of(ErrorCode::conflict, "snapshots are read-only", EBUSY), EROFS);
    EXPECT_EQ(
        errno_of(ErrorCode::failed, "a file end at 1 + 2 bytes exceeds the volume's data area"),
        EFBIG);
    EXPECT_EQ(errno_of(ErrorCode::conflict,
                       "/.snapshots/a/f is part of a snapshot (release the snapshot)", EBUSY),
              EROFS);
}

TEST(CsvFuseErrno, ExhaustionIsNoSpace) {
    EXPECT_EQ(errno_of(ErrorCode::failed, "volume full: 12 blocks wanted, 3 free"), ENOSPC);
    EXPECT_EQ(errno_of(ErrorCode::failed, "no free inodes on the volume"), ENOSPC);
    EXPECT_EQ(errno_of(ErrorCode::failed, "the journal is too small for this resize"), EFBIG);
    EXPECT_EQ(errno_of(ErrorCode::failed, "something else"), EIO);
}

TEST(CsvFuseSpace, ReadsTheSuperblock) {
    MemoryBlockDevice lun(64 << 20);
    const Superblock sb = format_volume(lun, FormatOptions{"Volume7", 0, 0, 0});
    const VolumeSpace space = read_volume_space(lun);
    EXPECT_EQ(space.label, "Volume7");
    EXPECT_EQ(space.total_blocks, sb.total_blocks);
    EXPECT_EQ(space.data_blocks, sb.data_end - sb.data_start);
    EXPECT_EQ(space.free_blocks, sb.free_blocks);
    EXPECT_EQ(space.inode_count, sb.inode_count);
    EXPECT_EQ(space.free_inodes, sb.free_inodes);
    EXPECT_LE(space.free_blocks, space.data_blocks);
}

TEST(CsvFuseSpace, RefusesABadSuperblock) {
    MemoryBlockDevice lun(64 << 20);
    format_volume(lun, FormatOptions{"Volume7", 0, 0, 0});
    std::array<std::byte, 8> junk{};
    junk.fill(std::byte{0x5a});
    lun.write(100, junk);
    try {
        read_volume_space(lun);
        FAIL() << "a corrupt superblock was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::invalid_input);
    }
}

} // namespace
} // namespace godwit::csv
