#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <random>
#include <thread>

#include "godwit/csv/checker.hpp"
#include "godwit/csv/journal.hpp"
#include "godwit/csv/lease.hpp"
#include "godwit/csv/shared_blocks.hpp"
#include "godwit/csv/volume.hpp"
#include "godwit/error.hpp"
#include "volume_model.hpp"

using namespace godwit::csv;
using godwit::ErrorCode;
namespace model = godwit::csv::testing;

namespace {

constexpr std::uint64_t kDeviceBytes = 64ull << 20;

MountOptions node(std::uint64_t id) {
    MountOptions o;
    o.identity = {id, "node" + std::to_string(id)};
    o.lease.lease_duration_ms = 20;
    return o;
}

std::string problems(const CheckReport& r) {
    std::string s;
    for (const auto& p : r.problems) {
        s += p + "\n";
    }
    return s;
}

ErrorCode code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const godwit::Error& e) {
        return e.code();
    }
    return ErrorCode::internal;
}

} // namespace

TEST(CsvVolume, FormatMountAndNamespaceOperations) {
    MemoryBlockDevice dev(kDeviceBytes);
    Superblock sb = format_volume(dev, FormatOptions{"Volume1", 0, 0, 0});
    EXPECT_EQ(std::string(sb.label.data()), "Volume1");
    EXPECT_TRUE(check_volume(dev).clean()) << problems(check_volume(dev));
    {
        auto v = Volume::mount(dev, node(1));
        const std::uint64_t free0 = v->free_blocks();
        v->make_directory("/vms");
        v->make_directory("/vms/web");
        auto fi = v->create_file("/vms/web/disk.vhd", 10 << 20);
        EXPECT_EQ(fi.size, 10u << 20);
        EXPECT_EQ(fi.extent_count, 1u); // one contiguous extent
        EXPECT_EQ(code_of([&] { v->create_file("/vms/web/disk.vhd"); }), ErrorCode::conflict);
        EXPECT_EQ(code_of([&] { v->create_file("/nope/x"); }), ErrorCode::not_found);
        EXPECT_EQ(code_of([&] { v->create_file("/vms/web/disk.vhd/x"); }), ErrorCode::not_found);
        EXPECT_EQ(code_of([&] { v->stat("/vms/web/disk.vhd/x"); }), ErrorCode::not_found);
        EXPECT_EQ(code_of([&] { v->remove("/vms"); }), ErrorCode::conflict); // not empty
        auto h = v->open("/vms/web/disk.vhd");
        auto data = model::pattern(7, 100000);
        v->write(h, 5000, data);
        std::vector<std::byte> back(100000);
        EXPECT_EQ(v->read(h, 5000, back), 100000u);
        EXPECT_EQ(back, data);
        EXPECT_EQ(code_of([&] { v->remove("/vms/web/disk.vhd"); }), ErrorCode::conflict); // open
        auto map = v->block_map(h, 0, 1 << 20);
        ASSERT_EQ(map.segments.size(), 1u);
        EXPECT_EQ(map.segments[0].length, 1u << 20);
        EXPECT_EQ(map.generation, fi.generation);
        // The map is where the data is: a node reading the LUN directly sees it.
        std::vector<std::byte> direct(100);
        dev.read(map.segments[0].device_offset + 5000, direct);
        EXPECT_TRUE(std::equal(direct.begin(), direct.end(), data.begin()));
        v->close(h);
        v->rename("/vms/web", "/web");
        EXPECT_EQ(v->stat("/web/disk.vhd").inode, fi.inode);
        EXPECT_EQ(code_of([&] { v->rename("/vms", "/web/disk.vhd"); }), ErrorCode::conflict);
        v->make_directory("/web/sub");
        EXPECT_EQ(code_of([&] { v->rename("/web", "/web/sub/x"); }), ErrorCode::usage);
        v->resize("/web/disk.vhd", 3000);
        auto h2 = v->open("/web/disk.vhd");
        v->resize(h2, 8192); // grown again: bytes past 3000 read as zeros
        std::vector<std::byte> tail(8192);
        v->read(h2, 0, tail);
        for (std::size_t i = 3000; i < 8192; ++i) {
            ASSERT_EQ(tail[i], std::byte{0}) << i;
        }
        v->close(h2);
        v->remove("/web/disk.vhd");
        v->remove("/web/sub");
        v->remove("/web");
        v->remove("/vms");
        EXPECT_EQ(v->list("/").size(), 0u);
        EXPECT_EQ(v->free_blocks(), free0 - 1); // all but the root directory's one block
    }
    auto report = check_volume(dev);
    EXPECT_TRUE(report.clean()) << problems(report);
}

TEST(CsvVolume, ManyEntriesAndLongNamesSurviveRemount) {
    MemoryBlockDevice dev(kDeviceBytes);
    format_volume(dev, {});
    std::string longname(255, 'L');
    {
        auto v = Volume::mount(dev, node(1));
        for (int i = 0; i < 40; ++i) {
            v->create_file("/f" + std::to_string(i), 4096 * (i % 3));
        }
        v->create_file("/" + longname);
    }
    auto v = Volume::mount(dev, node(1));
    auto names = v->list("/");
    EXPECT_EQ(names.size(), 41u);
    EXPECT_EQ(v->stat("/" + longname).type, InodeType::file);
    EXPECT_EQ(code_of([&] { v->create_file("/" + longname + "x"); }), ErrorCode::usage);
    v.reset();
    EXPECT_TRUE(check_volume(dev).clean()) << problems(check_volume(dev));
}

TEST(CsvVolume, FragmentedFileSpillsIntoExtentMapBlocks) {
    MemoryBlockDevice dev(kDeviceBytes);
    format_volume(dev, {});
    auto v = Volume::mount(dev, node(1));
    // Interleave two growing files so each gets many extents.
    for (int i = 0; i < 200; ++i) {
        for (const char* f : {"/a", "/b"}) {
            if (i == 0) {
                v->create_file(f);
            }
            v->resize(f, (i + 1) * 4096);
        }
    }
    EXPECT_GT(v->stat("/a").extent_count, kInlineExtents + kExtentsPerMapBlock);
    auto h = v->open("/a");
    auto data = model::pattern(3, 200 * 4096);
    v->write(h, 0, data);
    std::vector<std::byte> back(data.size());
    v->read(h, 0, back);
    EXPECT_EQ(back, data);
    v->close(h);
    v->resize("/a", 4096);
    EXPECT_EQ(v->stat("/a").extent_count, 1u);
    v.reset();
    EXPECT_TRUE(check_volume(dev).clean()) << problems(check_volume(dev));
}

TEST(CsvVolume, LeaseFencesTheOldCoordinator) {
    MemoryBlockDevice dev(kDeviceBytes);
    format_volume(dev, {});
    auto first = Volume::mount(dev, node(1));
    first->create_file("/x");
    first->heartbeat();
    // The operator has fenced node 1 (or it is dead): node 2 forces the takeover.
    auto second_options = node(2);
    second_options.lease.force = true;
    auto second = Volume::mount(dev, second_options);
    EXPECT_EQ(second->lease_generation(), first->lease_generation() + 1);
    // ...and the old coordinator can no longer write metadata.
    EXPECT_EQ(code_of([&] { first->create_file("/y"); }), ErrorCode::conflict);
    EXPECT_EQ(code_of([&] { first->heartbeat(); }), ErrorCode::conflict);
    second->create_file("/z");
    first.reset();
    second.reset();
    auto report = check_volume(dev);
    EXPECT_TRUE(report.clean()) << problems(report);
}

TEST(CsvVolume, LiveLeaseIsRefused) {
    MemoryBlockDevice dev(kDeviceBytes);
    format_volume(dev, {});
    auto first = Volume::mount(dev, node(1));
    std::atomic<bool> stop{false};
    std::thread beat([&] {
        while (!stop) {
            first->heartbeat();
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    });
    auto second = node(2);
    second.lease.lease_duration_ms = 100;
    EXPECT_EQ(code_of([&] { Volume::mount(dev, second); }), ErrorCode::conflict);
    stop = true;
    beat.join();
}

TEST(CsvVolume, CheckerFindsCorruption) {
    MemoryBlockDevice dev(kDeviceBytes);
    Superblock sb = format_volume(dev, {});
    {
        auto v = Volume::mount(dev, node(1));
        v->create_file("/a", 8192);
        v->create_file("/b", 8192);
    }
    ASSERT_TRUE(check_volume(dev).clean());
    // Forget the last transaction: replaying it would repair what this test damages.
    write_block(dev, sb.journal_start, Block{});
    auto image = dev.bytes();
    // 1. Point /b's extent at /a's blocks (double allocation), checksum fixed up.
    {
        Block table = read_block(dev, sb.inode_table_start);
        auto t = load<InodeTableBlock>(table);
        t.inodes[3].extents[0].physical = t.inodes[2].extents[0].physical;
        store(table, t);
        reseal_block(table);
        write_block(dev, sb.inode_table_start, table);
        auto r = check_volume(dev);
        EXPECT_FALSE(r.clean());
        EXPECT_NE(problems(r).find("also owned"), std::string::npos) << problems(r);
        EXPECT_NE(problems(r).find("leak"), std::string::npos) << problems(r);
    }
    // 2. A flipped bit without a checksum fix-up.
    dev.bytes() = image;
    dev.bytes()[sb.inode_table_start * kBlockSize + 300] ^= std::byte{4};
    EXPECT_NE(problems(check_volume(dev)).find("checksum"), std::string::npos);
    EXPECT_EQ(code_of([&] { Volume::mount(dev, node(1))->list("/"); }), ErrorCode::invalid_input);
    // 3. A destroyed primary superblock: the backup still gives the layout, mount fails cleanly.
    dev.bytes() = image;
    std::fill_n(dev.bytes().begin(), kBlockSize, std::byte{0xFF});
    EXPECT_FALSE(check_volume(dev).clean());
    EXPECT_EQ(code_of([&] { Volume::mount(dev, node(1)); }), ErrorCode::invalid_input);
}

// A device that loses unflushed writes in a power cut: each 512-byte sector written since
// the last flush survives or not at random.
class PowerCutDevice : public BlockDevice {
  public:
    explicit PowerCutDevice(std::uint64_t size) : durable_(size), current_(size) {}
    void read(std::uint64_t offset, std::span<std::byte> out) override {
        current_.read(offset, out);
    }
    void write(std::uint64_t offset, std::span<const std::byte> in) override {
        if (writes_left_ == 0) {
            throw godwit::Error(ErrorCode::io, "power cut");
        }
        --writes_left_;
        current_.write(offset, in);
        pending_.push_back({offset, std::vector<std::byte>(in.begin(), in.end())});
    }
    void flush() override {
        for (auto& [offset, data] : pending_) {
            durable_.write(offset, data);
        }
        pending_.clear();
    }
    std::uint64_t size() const override { return current_.size(); }
    void cut_power_after(std::uint64_t writes) { writes_left_ = writes; }
    // The image after the cut.
    MemoryBlockDevice survivor(std::mt19937_64& rng) {
        MemoryBlockDevice out(durable_.bytes());
        for (auto& [offset, data] : pending_) {
            for (std::size_t s = 0; s < data.size(); s += 512) {
                if (rng() % 2) {
                    out.write(offset + s, std::span(data).subspan(s, 512));
                }
            }
        }
        return out;
    }

  private:
    MemoryBlockDevice durable_;
    MemoryBlockDevice current_;
    std::vector<std::pair<std::uint64_t, std::vector<std::byte>>> pending_;
    std::uint64_t writes_left_ = UINT64_MAX;
};

TEST(CsvVolume, PowerCutAtAnyWriteLeavesAConsistentVolume) {
    std::mt19937_64 rng(1234);
    for (std::uint64_t cut = 1; cut < 400; cut += 7) {
        PowerCutDevice dev(16ull << 20);
        format_volume(dev, {});
        model::Model committed;
        model::Model attempted;
        model::OpGenerator gen(cut, 64 * 1024);
        std::vector<std::string> loose;
        {
            auto v = Volume::mount(dev, node(1));
            dev.cut_power_after(cut);
            try {
                for (int i = 0; i < 60; ++i) {
                    model::Op op = gen.next(committed);
                    attempted = committed;
                    model::apply(attempted, op);
                    loose = {op.path, op.target};
                    model::apply(*v, op);
                    committed = attempted;
                }
            } catch (const godwit::Error&) {
            }
            // The "crashed" instance must not touch the device any more: its unmount fails.
            dev.cut_power_after(0);
            v.reset();
        }
        MemoryBlockDevice after = dev.survivor(rng);
        auto report = check_volume(after);
        ASSERT_TRUE(report.clean()) << "cut " << cut << "\n" << problems(report);
        auto v = Volume::mount(after, node(1));
        auto actual = model::snapshot(*v);
        auto d1 = model::compare(committed, actual, loose);
        auto d2 = model::compare(attempted, actual, loose);
        ASSERT_TRUE(d1.empty() || d2.empty()) << "cut " << cut << ": " << (d1.empty() ? "" : d1[0]);
        v.reset();
        ASSERT_TRUE(check_volume(after).clean());
    }
}

TEST(CsvVolume, RandomOperationsMatchTheModel) {
    MemoryBlockDevice dev(kDeviceBytes);
    FormatOptions options;
    options.journal_blocks = 16;
    options.inode_count = 3000;
    format_volume(dev, options);
    model::Model model;
    model::OpGenerator gen(99);
    auto v = Volume::mount(dev, node(1));
    for (int i = 0; i < 1500; ++i) {
        model::Op op = gen.next(model);
        model::apply(*v, op);
        model::apply(model, op);
        if (i % 250 == 249) {
            v.reset();
            auto report = check_volume(dev);
            ASSERT_TRUE(report.clean()) << "after op " << i << "\n" << problems(report);
            v = Volume::mount(dev, node(1));
            auto diffs = model::compare(model, model::snapshot(*v));
            ASSERT_TRUE(diffs.empty()) << diffs[0];
        }
    }
}

TEST(CsvLease, StaleLeaseIsTakenOverAfterOneDuration) {
    MemoryBlockDevice dev(kDeviceBytes);
    format_volume(dev, {});
    LeaseIdentity a{1, "a"};
    LeaseIdentity b{2, "b"};
    AcquireOptions opts;
    opts.lease_duration_ms = 30;
    const std::uint64_t ga = acquire_lease(dev, 1, a, opts);
    heartbeat_lease(dev, 1, a, ga);
    EXPECT_EQ(read_lease(dev, 1).heartbeat_counter, 1u);
    // Node a stops heartbeating (it crashed, or is partitioned): b waits and takes over.
    auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t gb = acquire_lease(dev, 1, b, opts);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(30));
    EXPECT_EQ(gb, ga + 1);
    EXPECT_EQ(read_lease(dev, 1).owner_node_id, 2u);
    EXPECT_EQ(code_of([&] { verify_lease(dev, 1, a, ga); }), ErrorCode::conflict);
    EXPECT_EQ(code_of([&] { heartbeat_lease(dev, 1, a, ga); }), ErrorCode::conflict);
    release_lease(dev, 1, a, ga); // not a's any more: no effect
    EXPECT_EQ(read_lease(dev, 1).owner_node_id, 2u);
    release_lease(dev, 1, b, gb);
    EXPECT_EQ(read_lease(dev, 1).state, static_cast<std::uint32_t>(LeaseState::free));
}

TEST(CsvVolume, CheckerFindsDirectoryTreeProblems) {
    MemoryBlockDevice dev(kDeviceBytes);
    Superblock sb = format_volume(dev, {});
    {
        auto v = Volume::mount(dev, node(1));
        v->make_directory("/d");
        v->create_file("/d/f", 4096);
    }
    write_block(dev, sb.journal_start, Block{});
    // Clear the root's entry for /d: /d and /d/f become unreachable.
    Block table = read_block(dev, sb.inode_table_start);
    auto t = load<InodeTableBlock>(table);
    const std::uint64_t root_dir_block = t.inodes[kRootInode].extents[0].physical;
    Block dir = read_block(dev, root_dir_block);
    auto d = load<DirectoryBlock>(dir);
    ASSERT_EQ(entry_name(d.entries[0]), "d");
    d.entries[0] = DirectoryEntry{};
    store(dir, d);
    reseal_block(dir);
    write_block(dev, root_dir_block, dir);
    auto r = check_volume(dev);
    EXPECT_NE(problems(r).find("not in the directory tree"), std::string::npos) << problems(r);
    // A hostile entry name with a slash.
    d = load<DirectoryBlock>(dir);
    d.entries[0].inode = 2;
    d.entries[0].name_length = 3;
    std::memcpy(d.entries[0].name.data(), "a/b", 3);
    store(dir, d);
    reseal_block(dir);
    write_block(dev, root_dir_block, dir);
    EXPECT_NE(problems(check_volume(dev)).find("malformed entry name"), std::string::npos);
    EXPECT_EQ(code_of([&] { Volume::mount(dev, node(1))->list("/"); }), ErrorCode::invalid_input);
}

// ---- snapshots (docs/csv-format.md §12) ----------------------------------------------------

TEST(CsvSharedBlocks, CountsReferencesAndFreesTheLastOne) {
    SharedBlocks shared;
    EXPECT_TRUE(shared.empty());
    shared.add(100, 50); // blocks 100..149 referenced twice
    shared.add(120, 10); // 120..129 three times
    EXPECT_EQ(shared.extra(99), 0u);
    EXPECT_EQ(shared.extra(100), 1u);
    EXPECT_EQ(shared.extra(125), 2u);
    EXPECT_EQ(shared.shared_blocks(), 50u);
    EXPECT_EQ(shared.shared(90, 20), (std::vector<godwit::csv::Run>{{100, 10}}));
    EXPECT_TRUE(shared.any_shared(149, 5));
    EXPECT_FALSE(shared.any_shared(150, 5));
    EXPECT_FALSE(shared.any_shared(0, 100));
    // Dropping a run that extends past the shared part: the unshared ends are freed.
    EXPECT_EQ(shared.drop(90, 70), (std::vector<godwit::csv::Run>{{90, 10}, {150, 10}}));
    EXPECT_EQ(shared.shared(0, 1000), (std::vector<godwit::csv::Run>{{120, 10}}));
    EXPECT_EQ(shared.drop(120, 10), std::vector<godwit::csv::Run>{});
    EXPECT_TRUE(shared.empty());
    EXPECT_EQ(shared.drop(120, 10), (std::vector<godwit::csv::Run>{{120, 10}}));

    auto counted = SharedBlocks::from_references({{0, 10}, {5, 10}, {8, 1}, {30, 4}});
    EXPECT_EQ(counted.shared(0, 100), (std::vector<godwit::csv::Run>{{5, 5}}));
    EXPECT_EQ(counted.extra(8), 2u);
    EXPECT_EQ(counted.extra(9), 1u);
}

TEST(CsvSnapshot, PointInTimeCopyOnWrite) {
    MemoryBlockDevice dev(kDeviceBytes);
    format_volume(dev, FormatOptions{"Volume1", 0, 0, 0});
    std::uint64_t free_at_format = 0;
    {
        auto v = Volume::mount(dev, node(1));
        free_at_format = v->free_blocks();
        v->make_directory("/vms");
        v->create_file("/vms/a", 3 << 20);
        auto a_data = model::pattern(1, 3 << 20);
        auto h = v->open("/vms/a");
        v->write(h, 0, a_data);
        v->create_file("/b");
        auto hb = v->open("/b");
        v->write(hb, 0, model::pattern(2, 5000));
        v->close(hb);
        EXPECT_EQ(code_of([&] { v->make_directory("/.snapshots"); }), ErrorCode::conflict);
        EXPECT_TRUE(v->snapshots().empty());

        const std::uint64_t free_before = v->free_blocks();
        auto snap = v->create_snapshot("monday");
        EXPECT_EQ(snap.type, InodeType::directory);
        EXPECT_EQ(v->superblock().incompat_features & kIncompatSnapshots, kIncompatSnapshots);
        // Only metadata was written: the data blocks are shared, not copied.
        EXPECT_LE(free_before - v->free_blocks(), 8u);
        EXPECT_EQ(v->shared_blocks(), 768u + 2u);
        ASSERT_EQ(v->snapshots().size(), 1u);
        EXPECT_EQ(v->snapshots()[0].name, "monday");
        EXPECT_EQ(code_of([&] { v->create_snapshot("monday"); }), ErrorCode::conflict);
        EXPECT_EQ(code_of([&] { v->create_snapshot("bad/name"); }), ErrorCode::usage);

        // The live file's map is read-only where it shares blocks.
        auto map = v->block_map(h, 0, 3 << 20);
        for (const auto& seg : map.segments) {
            EXPECT_TRUE(seg.shared);
        }
        // A write copies the 1 MiB granule it touches, and only that.
        auto b_data = model::pattern(3, 100000);
        v->write(h, (1 << 20) + 10, b_data);
        EXPECT_EQ(v->shared_blocks(), 512u + 2u);
        map = v->block_map(h, 0, 3 << 20);
        std::uint64_t unshared = 0;
        for (const auto& seg : map.segments) {
            if (!seg.shared) {
                unshared += seg.length;
                EXPECT_EQ(seg.file_offset, 1u << 20);
            }
        }
        EXPECT_EQ(unshared, 1u << 20);
        std::copy(b_data.begin(), b_data.end(), a_data.begin() + (1 << 20) + 10);

        // The snapshot is read-only and keeps the old data; the live file has the new.
        auto hs = v->open("/.snapshots/monday/vms/a");
        std::vector<std::byte> back(3 << 20);
        ASSERT_EQ(v->read(hs, 0, back), back.size());
        EXPECT_EQ(back, model::pattern(1, 3 << 20));
        ASSERT_EQ(v->read(h, 0, back), back.size());
        EXPECT_EQ(back, a_data);
        EXPECT_EQ(code_of([&] { v->write(hs, 0, b_data); }), ErrorCode::conflict);
        EXPECT_EQ(code_of([&] { v->resize(hs, 0); }), ErrorCode::conflict);
        EXPECT_EQ(code_of([&] { v->unshare(hs, 0, 4096); }), ErrorCode::conflict);
        EXPECT_EQ(code_of([&] { v->create_file("/.snapshots/monday/x"); }), ErrorCode::conflict);
        EXPECT_EQ(code_of([&] { v->remove("/.snapshots/monday/b"); }), ErrorCode::conflict);
        EXPECT_EQ(code_of([&] { v->remove("/.snapshots"); }), ErrorCode::conflict);
        EXPECT_EQ(code_of([&] { v->rename("/.snapshots/monday/b", "/c"); }), ErrorCode::conflict);
        EXPECT_EQ(code_of([&] { v->rename("/b", "/.snapshots/monday/c"); }), ErrorCode::conflict);
        for (const auto& seg : v->block_map(hs, 0, 3 << 20).segments) {
            EXPECT_TRUE(seg.shared);
        }

        // Deleting and truncating live files leaves the snapshot's blocks alone: a truncation
        // in the middle of a shared block copies that block before zeroing its tail.
        v->remove("/b");
        v->resize(h, (2 << 20) + 100);
        a_data.resize((2 << 20) + 100);
        v->write(h, 3 << 20, model::pattern(4, 10)); // grows again: zeros in between
        a_data.resize((3 << 20) + 10);
        auto tail = model::pattern(4, 10);
        std::copy(tail.begin(), tail.end(), a_data.begin() + (3 << 20));
        v->close(h);
        v->close(hs);
        auto report = check_volume(dev);
        EXPECT_TRUE(report.clean()) << problems(report);
    }
    {
        // After a remount the sharing is known again (rebuilt from the extents).
        auto v = Volume::mount(dev, node(1));
        EXPECT_GT(v->shared_blocks(), 0u);
        auto h = v->open("/.snapshots/monday/b");
        std::vector<std::byte> b(5000);
        ASSERT_EQ(v->read(h, 0, b), 5000u);
        EXPECT_EQ(b, model::pattern(2, 5000));
        auto live = model::snapshot(*v);
        EXPECT_EQ(live.at("/vms/a").content.size(), (3u << 20) + 10);
        EXPECT_EQ(code_of([&] { v->release_snapshot("monday"); }), ErrorCode::conflict); // open
        v->close(h);
        EXPECT_EQ(code_of([&] { v->release_snapshot("tuesday"); }), ErrorCode::not_found);
        v->release_snapshot("monday");
        EXPECT_TRUE(v->snapshots().empty());
        EXPECT_EQ(v->shared_blocks(), 0u);
        EXPECT_EQ(v->superblock().incompat_features, 0u);
        auto report = check_volume(dev);
        EXPECT_TRUE(report.clean()) << problems(report);
        // Nothing leaked: with the live files gone, only the root's and /.snapshots' one
        // directory block each are in use.
        v->remove("/vms/a");
        v->remove("/vms");
        EXPECT_EQ(v->free_blocks(), free_at_format - 2);
    }
    EXPECT_TRUE(check_volume(dev).clean()) << problems(check_volume(dev));
}

TEST(CsvSnapshot, RandomOperationsAndSnapshotsMatchTheModel) {
    MemoryBlockDevice dev(kDeviceBytes);
    FormatOptions options;
    options.journal_blocks = 16; // small transactions: snapshots take several
    options.inode_count = 3000;
    format_volume(dev, options);
    model::Model live;
    std::map<std::string, model::Model> taken;
    model::OpGenerator gen(7);
    std::mt19937_64 rng(7);
    auto v = Volume::mount(dev, node(1));
    int next = 0;
    for (int i = 0; i < 1200; ++i) {
        model::Op op = gen.next(live);
        model::apply(*v, op);
        model::apply(live, op);
        if (i % 60 == 30) {
            const std::string name = "s" + std::to_string(next++);
            v->create_snapshot(name);
            taken[name] = live;
        }
        if (i % 150 == 149 && taken.size() > 1) {
            auto it = std::next(taken.begin(), static_cast<long>(rng() % taken.size()));
            v->release_snapshot(it->first);
            taken.erase(it);
        }
        if (i % 300 == 299) {
            v.reset();
            auto report = check_volume(dev);
            ASSERT_TRUE(report.clean()) << "after op " << i << "\n" << problems(report);
            v = Volume::mount(dev, node(1));
            auto diffs = model::compare(live, model::snapshot(*v));
            ASSERT_TRUE(diffs.empty()) << diffs[0];
            for (const auto& [name, expected] : taken) {
                auto d = model::compare(expected, model::snapshot(*v, "/.snapshots/" + name));
                ASSERT_TRUE(d.empty()) << name << ": " << d[0];
            }
        }
    }
    for (const auto& [name, expected] : taken) {
        v->release_snapshot(name);
    }
    EXPECT_EQ(v->shared_blocks(), 0u);
    v.reset();
    auto report = check_volume(dev);
    EXPECT_TRUE(report.clean()) << problems(report);
}

// A crash while a snapshot is taken or released: the next mount finishes the release (or
// removes the half-taken one); the live files and the volume stay intact.
TEST(CsvSnapshot, PowerCutDuringSnapshotLeavesAConsistentVolume) {
    std::mt19937_64 rng(4321);
    for (std::uint64_t cut = 1; cut < 120; cut += 3) {
        PowerCutDevice dev(16ull << 20);
        FormatOptions options;
        options.journal_blocks = 8; // several transactions per snapshot
        format_volume(dev, options);
        model::Model live;
        {
            auto v = Volume::mount(dev, node(1));
            model::OpGenerator gen(cut, 32 * 1024);
            for (int i = 0; i < 40; ++i) {
                model::Op op = gen.next(live);
                model::apply(*v, op);
                model::apply(live, op);
            }
            v->create_snapshot("keep");
            dev.cut_power_after(cut);
            try {
                v->create_snapshot("new");
                v->release_snapshot("keep");
            } catch (const godwit::Error&) {
            }
            dev.cut_power_after(0);
            v.reset();
        }
        MemoryBlockDevice after = dev.survivor(rng);
        auto report = check_volume(after);
        ASSERT_TRUE(report.clean()) << "cut " << cut << "\n" << problems(report);
        auto v = Volume::mount(after, node(1));
        auto d = model::compare(live, model::snapshot(*v));
        ASSERT_TRUE(d.empty()) << "cut " << cut << ": " << d[0];
        for (const FileInfo& s : v->snapshots()) {
            EXPECT_EQ(s.flags & inode_snapshot_pending, 0) << "cut " << cut;
            auto ds = model::compare(live, model::snapshot(*v, "/.snapshots/" + s.name));
            ASSERT_TRUE(ds.empty()) << "cut " << cut << " " << s.name << ": " << ds[0];
        }
        v.reset();
        report = check_volume(after);
        ASSERT_TRUE(report.clean()) << "cut " << cut << " after mount\n" << problems(report);
    }
}

// A file rewritten front to back after a snapshot copies in growing windows (1, 2, 4 MiB…),
// not one coordinator round trip per MiB; a write elsewhere starts again at 1 MiB.
TEST(CsvSnapshot, CopyWindowGrowsForSequentialWriters) {
    MemoryBlockDevice dev(kDeviceBytes);
    format_volume(dev, FormatOptions{"Volume1", 0, 0, 0});
    auto v = Volume::mount(dev, node(1));
    v->create_file("/disk", 8 << 20); // 2048 blocks
    auto h = v->open("/disk");
    v->create_snapshot("s");
    EXPECT_EQ(v->shared_blocks(), 2048u);
    const auto data = model::pattern(1, 4096);
    v->write(h, 0, data); // copies blocks [0, 256)
    EXPECT_EQ(v->shared_blocks(), 2048u - 256);
    v->write(h, 1 << 20, data); // continues: [256, 768)
    EXPECT_EQ(v->shared_blocks(), 2048u - 768);
    v->write(h, 3 << 20, data); // continues: [768, 1792)
    EXPECT_EQ(v->shared_blocks(), 256u);
    v->close(h);
    v->release_snapshot("s");
    v.reset();
    EXPECT_TRUE(check_volume(dev).clean()) << problems(check_volume(dev));
}

// Offsets and sizes arrive from nodes as any 64-bit value: a write or resize whose end
// does not fit in 64 bits, or beyond anything the volume can hold, is refused and touches
// nothing (before, the write's end wrapped around and its data landed elsewhere on the LUN).
TEST(CsvVolume, HostileOffsetsAndSizesAreRefused) {
    MemoryBlockDevice dev(kDeviceBytes);
    format_volume(dev, FormatOptions{"Volume1", 0, 0, 0});
    auto v = Volume::mount(dev, node(1));
    v->create_file("/f", 1 << 20);
    auto h = v->open("/f");
    v->write(h, 0, model::pattern(1, 1 << 20));
    const auto data = model::pattern(2, 8192);
    for (std::uint64_t offset :
         {UINT64_MAX - 100, UINT64_MAX - 8191, UINT64_MAX / 2, std::uint64_t{1} << 62}) {
        EXPECT_EQ(code_of([&] { v->write(h, offset, data); }), ErrorCode::failed) << offset;
    }
    for (std::uint64_t size : {UINT64_MAX, UINT64_MAX - 4000, std::uint64_t{1} << 62}) {
        EXPECT_EQ(code_of([&] { v->resize(h, size); }), ErrorCode::failed) << size;
        EXPECT_EQ(code_of([&] { v->create_file("/g" + std::to_string(size), size); }),
                  ErrorCode::failed);
        EXPECT_EQ(code_of([&] { v->stat("/g" + std::to_string(size)); }), ErrorCode::not_found);
    }
    v->unshare(h, 4096, UINT64_MAX); // nothing shared: nothing to do, and no wrap-around
    EXPECT_EQ(v->stat("/f").size, 1u << 20);
    std::vector<std::byte> back(1 << 20);
    EXPECT_EQ(v->read(h, 0, back), back.size());
    EXPECT_EQ(back, model::pattern(1, 1 << 20));
    EXPECT_EQ(v->read(h, UINT64_MAX - 10, back), 0u);
    v->close(h);
    v.reset();
    auto report = check_volume(dev);
    EXPECT_TRUE(report.clean()) << problems(report);
}
