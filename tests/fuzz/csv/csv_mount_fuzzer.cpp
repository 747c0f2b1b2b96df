// libFuzzer target for everything read at mount: superblock (primary and backup), lease,
// journal (replay), bitmap, inode table, extent maps, directories and snapshots (the shared
// block index, pending snapshots finished at mount) — then the checker, a walk of the tree
// with reads, and a few metadata operations on what mounted: writes that copy shared
// blocks, taking and releasing snapshots.
//
// Input: patches applied to a small valid volume, so the fuzzer starts deep in the format.
// Each patch is [u32 offset][u8 length][u8 reseal][length bytes]; with `reseal` odd, the
// CRC of the patched metadata block is recomputed, so the parsers behind the checksums are
// reached too.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "godwit/csv/checker.hpp"
#include "godwit/csv/journal.hpp"
#include "godwit/csv/volume.hpp"
#include "godwit/error.hpp"

using namespace godwit::csv;

namespace {

constexpr std::uint64_t kImageBytes = 64 * kBlockSize;

std::vector<std::byte> make_base_image() {
    MemoryBlockDevice dev(kImageBytes);
    format_volume(dev, FormatOptions{"fuzz", 0, 0, 0});
    MountOptions o;
    o.identity = {1, "fuzz"};
    o.lease.force = true;
    {
        auto v = Volume::mount(dev, o);
        v->make_directory("/dir");
        v->create_file("/dir/file", 3 * kBlockSize + 100);
        for (int i = 0; i < 16; ++i) {
            v->create_file("/f" + std::to_string(i), i % 4 == 0 ? kBlockSize : 0);
        }
        v->create_file("/a", kBlockSize);
        v->create_file("/b", kBlockSize);
        v->resize("/a", 2 * kBlockSize); // fragments /a
        v->resize("/b", 2 * kBlockSize);
        v->rename("/f3", "/dir/moved");
        // Snapshots (format 1.1): /.snapshots, snapshot inodes, blocks shared with the live
        // files and, after a copy-on-write, blocks the snapshot alone holds.
        v->create_snapshot("s");
        auto h = v->open("/dir/file");
        std::vector<std::byte> data(100, std::byte{0x5A});
        v->write(h, 10, data);
        v->close(h);
        v->remove("/f4");
    }
    return dev.bytes();
}

void walk(Volume& v, const std::string& dir, int depth, std::set<std::uint64_t>& seen) {
    if (depth > 8) {
        return;
    }
    for (const FileInfo& fi : v.list(dir)) {
        if (!seen.insert(fi.inode).second) {
            continue; // a hostile image may link a directory into itself
        }
        std::string path = (dir == "/" ? "" : dir) + "/" + fi.name;
        if (fi.type == InodeType::directory) {
            walk(v, path, depth + 1, seen);
        } else {
            auto h = v.open(path);
            std::vector<std::byte> buf(std::min<std::uint64_t>(fi.size, 64 * 1024));
            v.read(h, 0, buf);
            v.block_map(h, 0, fi.size);
            v.close(h);
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::vector<std::byte> base = make_base_image();
    MemoryBlockDevice dev(base);
    std::set<std::uint64_t> reseal;
    std::size_t i = 0;
    while (i + 6 <= size) {
        std::uint32_t offset;
        std::memcpy(&offset, data + i, 4);
        offset %= kImageBytes;
        std::size_t length = std::min<std::size_t>(data[i + 4] % 33, size - i - 6);
        const bool fix = data[i + 5] & 1;
        i += 6;
        length = std::min<std::size_t>(length, kImageBytes - offset);
        std::memcpy(dev.bytes().data() + offset, data + i, length);
        i += length;
        if (fix) {
            reseal.insert(offset / kBlockSize);
        }
    }
    for (std::uint64_t b : reseal) {
        Block block = read_block(dev, b);
        reseal_block(block);
        write_block(dev, b, block);
    }
    try {
        (void)check_volume(dev);
    } catch (const godwit::Error&) {
    }
    MountOptions o;
    o.identity = {2, "fuzz"};
    o.lease.force = true;
    try {
        auto v = Volume::mount(dev, o);
        std::set<std::uint64_t> seen;
        walk(*v, "/", 0, seen);
        v->create_file("/new", 5000);
        v->rename("/new", "/dir/new");
        v->remove("/dir/new");
        auto h = v->open("/dir/file");
        std::vector<std::byte> data(5000, std::byte{0xA5});
        v->write(h, 0, data); // copy-on-write where a snapshot shares the blocks
        v->close(h);
        v->create_snapshot("t");
        v->release_snapshot("s");
    } catch (const godwit::Error&) {
    }
    return 0;
}
