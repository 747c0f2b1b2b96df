// A coordinator process and two node processes on 127.0.0.1 share one image file opened
// with O_DIRECT. Each node writes its own VHD-sized file directly on the LUN through block
// maps; both write disjoint regions of one shared file while one of them keeps growing it,
// so the coordinator must revoke the other's block-map lease before each change. At the end
// every byte is checked against a model and the volume checker must pass.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include "godwit/csv/checker.hpp"
#include "godwit/csv/coordinator.hpp"
#include "godwit/csv/csv_file_store.hpp"
#include "godwit/csv/node_client.hpp"
#include "godwit/csv/volume.hpp"
#include "godwit/error.hpp"
#include "godwit/vhd/vhd_image.hpp"
#include "volume_model.hpp"

using namespace godwit::csv;
namespace model = godwit::csv::testing;

namespace {

constexpr std::uint64_t kSharedHalf = 256 * 1024;

struct Write {
    std::uint64_t offset;
    std::size_t length;
    std::uint32_t seed;
};

// Node `id`'s writes to its own file: aligned and unaligned, some past the end (growing it).
std::vector<Write> own_writes(int id) {
    std::mt19937_64 rng(id * 7919);
    std::vector<Write> writes;
    for (int i = 0; i < 60; ++i) {
        std::uint64_t offset = rng() % (4 << 20);
        if (i % 2 == 0) {
            offset &= ~std::uint64_t{4095};
        }
        writes.push_back({offset, 1 + static_cast<std::size_t>(rng() % (200 * 1024)),
                          static_cast<std::uint32_t>(rng())});
    }
    return writes;
}

void apply(std::vector<std::byte>& content, const Write& w) {
    if (content.size() < w.offset + w.length) {
        content.resize(w.offset + w.length);
    }
    auto data = model::pattern(w.seed, w.length);
    std::copy(data.begin(), data.end(), content.begin() + static_cast<std::ptrdiff_t>(w.offset));
}

std::vector<std::byte> expected_own(int id) {
    std::vector<std::byte> content(1 << 20);
    for (const Write& w : own_writes(id)) {
        apply(content, w);
    }
    return content;
}

// Shared file: node 1 writes [0, kSharedHalf) over and over; node 2 grows the file by 64 KiB
// at a time and writes each new piece.
constexpr int kSharedRounds = 24;

[[noreturn]] void node_main(const std::string& image, std::uint16_t port, int id, int result_fd) {
    try {
        PosixBlockDevice lun(image, PosixBlockDevice::Access::read_write, true);
        NodeClient node("127.0.0.1", port, lun, static_cast<std::uint64_t>(id),
                        "node" + std::to_string(id), std::chrono::milliseconds(500));
        const std::string own = "/node" + std::to_string(id) + ".vhd";
        node.create(own, 1 << 20);
        auto h = node.open(own);
        std::vector<std::byte> content(1 << 20);
        auto shared = node.open("/shared");
        int round = 0;
        for (const Write& w : own_writes(id)) {
            node.write(h, w.offset, model::pattern(w.seed, w.length));
            apply(content, w);
            if (round < kSharedRounds) {
                if (id == 1) {
                    node.write(shared, (round % 4) * (kSharedHalf / 4),
                               model::pattern(1000 + round, kSharedHalf / 4));
                } else {
                    node.write(shared, kSharedHalf + round * 65536u,
                               model::pattern(2000 + round, 65536));
                }
                ++round;
            }
        }
        std::vector<std::byte> back(content.size());
        if (node.size(h) != content.size() || node.read(h, 0, back) != content.size() ||
            back != content) {
            std::fprintf(stderr, "node %d: read-back differs\n", id);
            _exit(4);
        }
        node.close(h);
        node.close(shared);
        std::uint64_t stats[2] = {node.revocations_received(), node.maps_fetched()};
        if (::write(result_fd, stats, sizeof stats) != sizeof stats) {
            _exit(5);
        }
        _exit(0);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "node %d: %s\n", id, e.what());
        _exit(3);
    }
}

[[noreturn]] void coordinator_main(const std::string& image, int port_fd, int stop_fd) {
    try {
        PosixBlockDevice lun(image, PosixBlockDevice::Access::read_write, true);
        MountOptions o;
        o.identity = {100, "coordinator"};
        o.lease.lease_duration_ms = 10;
        auto volume = Volume::mount(lun, o);
        Coordinator coordinator(*volume, "127.0.0.1", 0, std::chrono::milliseconds(500));
        std::uint16_t port = coordinator.port();
        std::thread server([&] { coordinator.run(); });
        if (::write(port_fd, &port, sizeof port) != sizeof port) {
            _exit(5);
        }
        char c;
        (void)::read(stop_fd, &c, 1); // the test says stop (or dies: EOF)
        coordinator.stop();
        server.join();
        std::uint64_t revocations = coordinator.revocations_sent();
        if (::write(port_fd, &revocations, sizeof revocations) != sizeof revocations) {
            _exit(5);
        }
        volume->unmount();
        _exit(0);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coordinator: %s\n", e.what());
        _exit(3);
    }
}

int wait_exit(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

} // namespace

TEST(CsvCluster, TwoNodesWriteDirectlyThroughCoordinatorMaps) {
    const std::string image = (std::filesystem::path(GODWIT_CSV_TEST_DIR) /
                               ("cluster-" + std::to_string(::getpid()) + ".img"))
                                  .string();
    PosixBlockDevice::create_image(image, 128ull << 20);
    {
        PosixBlockDevice lun(image, PosixBlockDevice::Access::read_write, true);
        format_volume(lun, FormatOptions{"Volume1", 0, 0, 0});
        MountOptions o;
        o.identity = {100, "setup"};
        Volume::mount(lun, o)->create_file("/shared", kSharedHalf);
    }
    int port_pipe[2];
    int stop_pipe[2];
    int result_pipe[2];
    ASSERT_EQ(::pipe(port_pipe), 0);
    ASSERT_EQ(::pipe(stop_pipe), 0);
    ASSERT_EQ(::pipe(result_pipe), 0);
    pid_t coordinator = ::fork();
    if (coordinator == 0) {
        ::close(stop_pipe[1]);
        coordinator_main(image, port_pipe[1], stop_pipe[0]);
    }
    ::close(stop_pipe[0]);
    std::uint16_t port = 0;
    ASSERT_EQ(::read(port_pipe[0], &port, sizeof port), static_cast<ssize_t>(sizeof port));
    pid_t nodes[2];
    for (int id = 1; id <= 2; ++id) {
        nodes[id - 1] = ::fork();
        if (nodes[id - 1] == 0) {
            node_main(image, port, id, result_pipe[1]);
        }
    }
    EXPECT_EQ(wait_exit(nodes[0]), 0) << "node 1";
    EXPECT_EQ(wait_exit(nodes[1]), 0) << "node 2";
    ASSERT_EQ(::write(stop_pipe[1], "x", 1), 1);
    std::uint64_t revocations_sent = 0;
    ASSERT_EQ(::read(port_pipe[0], &revocations_sent, sizeof revocations_sent),
              static_cast<ssize_t>(sizeof revocations_sent));
    EXPECT_EQ(wait_exit(coordinator), 0) << "coordinator";
    std::uint64_t stats[2][2] = {};
    ASSERT_EQ(::read(result_pipe[0], stats[0], sizeof stats[0]),
              static_cast<ssize_t>(sizeof stats[0]));
    ASSERT_EQ(::read(result_pipe[0], stats[1], sizeof stats[1]),
              static_cast<ssize_t>(sizeof stats[1]));
    // Node 2 grew /shared kSharedRounds times while node 1 held maps of it.
    EXPECT_GT(revocations_sent, 0u);
    EXPECT_GT(stats[0][0] + stats[1][0], 0u) << "no node saw a revocation";
    std::printf("cluster test: coordinator sent %llu revocations; maps fetched %llu + %llu\n",
                static_cast<unsigned long long>(revocations_sent),
                static_cast<unsigned long long>(stats[0][1]),
                static_cast<unsigned long long>(stats[1][1]));

    // Every byte against the model, then the checker.
    PosixBlockDevice lun(image, PosixBlockDevice::Access::read_write, true);
    {
        MountOptions o;
        o.read_only = true;
        auto v = Volume::mount(lun, o);
        for (int id = 1; id <= 2; ++id) {
            auto h = v->open("/node" + std::to_string(id) + ".vhd");
            auto want = expected_own(id);
            std::vector<std::byte> got(want.size() + 10);
            ASSERT_EQ(v->read(h, 0, got), want.size()) << "node " << id;
            got.resize(want.size());
            EXPECT_TRUE(got == want) << "node " << id << " file differs";
        }
        std::vector<std::byte> shared(kSharedHalf + kSharedRounds * 65536u);
        auto h = v->open("/shared");
        ASSERT_EQ(v->read(h, 0, shared), shared.size());
        for (int round = kSharedRounds - 4; round < kSharedRounds; ++round) {
            auto piece = model::pattern(1000 + round, kSharedHalf / 4);
            EXPECT_TRUE(std::equal(
                piece.begin(), piece.end(),
                shared.begin() + static_cast<std::ptrdiff_t>((round % 4) * (kSharedHalf / 4))))
                << "node 1's region, round " << round;
        }
        for (int round = 0; round < kSharedRounds; ++round) {
            auto piece = model::pattern(2000 + round, 65536);
            EXPECT_TRUE(std::equal(piece.begin(), piece.end(),
                                   shared.begin() +
                                       static_cast<std::ptrdiff_t>(kSharedHalf + round * 65536u)))
                << "node 2's region, round " << round;
        }
    }
    auto report = check_volume(lun);
    EXPECT_TRUE(report.clean()) << (report.problems.empty() ? "" : report.problems.front());
    std::filesystem::remove(image);
}

TEST(CsvCluster, RunningCoordinatorKeepsItsLease) {
    const std::string image = (std::filesystem::path(GODWIT_CSV_TEST_DIR) /
                               ("lease-" + std::to_string(::getpid()) + ".img"))
                                  .string();
    PosixBlockDevice::create_image(image, 32ull << 20);
    PosixBlockDevice lun(image, PosixBlockDevice::Access::read_write, true);
    format_volume(lun, FormatOptions{"Volume1", 0, 0, 0});
    MountOptions first;
    first.identity = {1, "coordinator"};
    first.lease.lease_duration_ms = 300;
    auto volume = Volume::mount(lun, first);
    MountOptions second;
    second.identity = {2, "usurper"};
    second.lease.lease_duration_ms = 300;
    {
        Coordinator coordinator(*volume, "127.0.0.1", 0);
        std::thread server([&] { coordinator.run(); });
        // The heartbeat moves within the lease duration: no takeover without force.
        PosixBlockDevice other(image, PosixBlockDevice::Access::read_write, true);
        try {
            Volume::mount(other, second);
            ADD_FAILURE() << "a second coordinator took a live volume";
        } catch (const godwit::Error& e) {
            EXPECT_EQ(e.code(), godwit::ErrorCode::conflict) << e.what();
        }
        coordinator.stop();
        server.join();
    }
    volume->unmount();
    PosixBlockDevice other(image, PosixBlockDevice::Access::read_write, true);
    EXPECT_NO_THROW(Volume::mount(other, second)); // released: free to take
    std::filesystem::remove(image);
}

// The coordinator is killed (SIGKILL) while two nodes create and grow files through it:
// after a journal replay every operation a node saw acknowledged is there, and the volume
// checks clean.
TEST(CsvCluster, CoordinatorKilledDuringMetadataWork) {
    const std::string image = (std::filesystem::path(GODWIT_CSV_TEST_DIR) /
                               ("kill-" + std::to_string(::getpid()) + ".img"))
                                  .string();
    PosixBlockDevice::create_image(image, 64ull << 20);
    {
        PosixBlockDevice lun(image, PosixBlockDevice::Access::read_write, true);
        FormatOptions f;
        f.inode_count = 4000;
        format_volume(lun, f);
    }
    int port_pipe[2];
    int stop_pipe[2];
    int done_pipe[2];
    ASSERT_EQ(::pipe(port_pipe), 0);
    ASSERT_EQ(::pipe(stop_pipe), 0);
    ASSERT_EQ(::pipe(done_pipe), 0);
    pid_t coordinator = ::fork();
    if (coordinator == 0) {
        ::close(stop_pipe[1]);
        coordinator_main(image, port_pipe[1], stop_pipe[0]);
    }
    std::uint16_t port = 0;
    ASSERT_EQ(::read(port_pipe[0], &port, sizeof port), static_cast<ssize_t>(sizeof port));
    pid_t nodes[2];
    for (int id = 1; id <= 2; ++id) {
        nodes[id - 1] = ::fork();
        if (nodes[id - 1] == 0) {
            try {
                PosixBlockDevice lun(image, PosixBlockDevice::Access::read_write, true);
                NodeClient node("127.0.0.1", port, lun, static_cast<std::uint64_t>(id), "node");
                for (std::uint32_t i = 0;; ++i) {
                    const std::string path = "/n" + std::to_string(id) + "-" + std::to_string(i);
                    node.create(path, (i % 5) * 12288);
                    if (i % 3 == 0) {
                        auto h = node.open(path);
                        node.resize(h, 100000 + i);
                        node.close(h);
                    }
                    std::uint32_t record[2] = {static_cast<std::uint32_t>(id), i};
                    if (::write(done_pipe[1], record, sizeof record) != sizeof record) {
                        _exit(5);
                    }
                }
            } catch (const std::exception&) {
                _exit(0); // the coordinator died: expected
            }
        }
    }
    ::close(done_pipe[1]);
    // Let the nodes get going (20 acknowledged operations), then kill at a random moment.
    std::map<int, std::uint32_t> completed; // node -> operations acknowledged
    std::uint32_t record[2];
    for (int seen = 0; seen < 20 && ::read(done_pipe[0], record, sizeof record) == sizeof record;
         ++seen) {
        completed[static_cast<int>(record[0])] = record[1] + 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::random_device{}() % 100));
    ::kill(coordinator, SIGKILL);
    EXPECT_EQ(wait_exit(coordinator), 128 + SIGKILL);
    EXPECT_EQ(wait_exit(nodes[0]), 0);
    EXPECT_EQ(wait_exit(nodes[1]), 0);
    while (::read(done_pipe[0], record, sizeof record) == sizeof record) {
        completed[static_cast<int>(record[0])] = record[1] + 1;
    }
    ASSERT_GE(completed[1] + completed[2], 20u) << "the nodes hardly ran";

    PosixBlockDevice lun(image, PosixBlockDevice::Access::read_write, true);
    auto before = check_volume(lun);
    ASSERT_TRUE(before.clean()) << before.problems.front();
    MountOptions o;
    o.identity = {200, "new-coordinator"};
    o.lease.force = true; // the old coordinator is dead (fenced)
    auto v = Volume::mount(lun, o);
    for (int id = 1; id <= 2; ++id) {
        for (std::uint32_t i = 0; i < completed[id]; ++i) {
            const std::string path = "/n" + std::to_string(id) + "-" + std::to_string(i);
            FileInfo fi = v->stat(path);
            EXPECT_EQ(fi.size, i % 3 == 0 ? 100000u + i : (i % 5) * 12288u) << path;
        }
    }
    v.reset();
    auto after = check_volume(lun);
    EXPECT_TRUE(after.clean()) << after.problems.front();
    std::printf("coordinator kill: %u + %u node operations acknowledged before the kill\n",
                completed[1], completed[2]);
    std::filesystem::remove(image);
}

// A formatted image file with an in-process coordinator on 127.0.0.1.
struct CoordinatorOnImage {
    static std::string make_image(const std::string& name, std::uint64_t bytes) {
        std::string path = (std::filesystem::path(GODWIT_CSV_TEST_DIR) /
                            (name + "-" + std::to_string(::getpid()) + ".img"))
                               .string();
        PosixBlockDevice::create_image(path, bytes);
        return path;
    }
    CoordinatorOnImage(const std::string& name, std::uint64_t bytes)
        : image(make_image(name, bytes)), lun(image, PosixBlockDevice::Access::read_write, true) {
        format_volume(lun, FormatOptions{"Volume1", 0, 0, 0});
        MountOptions o;
        o.identity = {1, "coordinator"};
        volume = Volume::mount(lun, o);
        coordinator = std::make_unique<Coordinator>(*volume, "127.0.0.1", 0);
        server = std::thread([this] { coordinator->run(); });
    }
    ~CoordinatorOnImage() {
        if (server.joinable()) {
            stop_and_check();
        }
    }
    std::uint16_t port() const { return coordinator->port(); }
    // Stops the coordinator and unmounts; true when the volume then checks clean.
    bool stop_and_check() {
        coordinator->stop();
        server.join();
        coordinator.reset();
        volume.reset();
        const bool clean = check_volume(lun).clean();
        std::filesystem::remove(image);
        return clean;
    }

    std::string image;
    PosixBlockDevice lun;
    std::unique_ptr<Volume> volume;
    std::unique_ptr<Coordinator> coordinator;
    std::thread server;
};

// A node of that cluster in this process: its own O_DIRECT path to the image, its client,
// and the direct API over it.
struct NodeOnImage {
    NodeOnImage(const CoordinatorOnImage& cluster, std::uint64_t id)
        : lun(cluster.image, PosixBlockDevice::Access::read_write, true),
          client("127.0.0.1", cluster.port(), lun, id, "node" + std::to_string(id)), store(client) {
    }
    PosixBlockDevice lun;
    NodeClient client;
    CsvFileStore store;
};

TEST(CsvCluster, NodeNamespaceOperationsGoThroughTheCoordinator) {
    CoordinatorOnImage cluster("ns", 32ull << 20);
    {
        PosixBlockDevice node_lun(cluster.image, PosixBlockDevice::Access::read_write, true);
        NodeClient node("127.0.0.1", cluster.port(), node_lun, 2, "node2");
        node.make_directory("/vms");
        node.create("/vms/a.vhd", 8192);
        node.rename("/vms/a.vhd", "/b.vhd");
        auto entries = node.list("/");
        ASSERT_EQ(entries.size(), 2u);
        EXPECT_EQ(entries[0].name, "b.vhd");
        EXPECT_FALSE(entries[0].directory);
        EXPECT_EQ(entries[0].size, 8192u);
        EXPECT_EQ(entries[1].name, "vms");
        EXPECT_TRUE(entries[1].directory);
        EXPECT_EQ(node.stat("/b.vhd").inode, entries[0].inode);
        auto h = node.open("/b.vhd");
        try {
            node.remove("/b.vhd");
            ADD_FAILURE() << "an open file was removed";
        } catch (const godwit::Error& e) {
            EXPECT_EQ(e.code(), godwit::ErrorCode::conflict) << e.what();
        }
        node.close(h);
        node.remove("/b.vhd");
        try {
            node.stat("/b.vhd");
            ADD_FAILURE() << "removed file still there";
        } catch (const godwit::Error& e) {
            EXPECT_EQ(e.code(), godwit::ErrorCode::not_found) << e.what();
        }
        EXPECT_EQ(node.list("/").size(), 1u);
    }
    EXPECT_TRUE(cluster.stop_and_check());
}

// The direct API (CsvFileStore): the VHD library creates, writes and reads disks on the
// volume through node clients, without FUSE. A dynamic disk made on node 2 is written there
// and read back on node 3; a differencing child made on node 3 finds its parent on the
// volume through its relative locator; the volume checker passes at the end.
TEST(CsvCluster, VhdDisksThroughTheDirectApi) {
    CoordinatorOnImage cluster("vhd", 64ull << 20);
    {
        NodeOnImage n2(cluster, 2), n3(cluster, 3);
        NodeClient &node2 = n2.client, &node3 = n3.client;
        CsvFileStore &store2 = n2.store, &store3 = n3.store;
        node2.make_directory("/vms");

        godwit::vhd::CreateOptions create;
        create.size = 16 << 20;
        create.block_size = 1 << 20;
        godwit::vhd::VhdImage::create("/vms/base.vhd", create, store2);
        EXPECT_THROW(godwit::vhd::VhdImage::create("/vms/base.vhd", create, store3),
                     godwit::Error); // exists
        std::vector<std::byte> model(create.size);
        {
            auto disk = godwit::vhd::VhdImage::open("/vms/base.vhd", true, store2);
            for (std::uint32_t i = 0; i < 12; ++i) {
                const std::uint64_t offset = (i * 1369ull * 1024 + i * 512) % (create.size - 70000);
                auto data = model::pattern(100 + i, 65536 + i * 7);
                disk->write(offset, data.data(), data.size());
                std::copy(data.begin(), data.end(),
                          model.begin() + static_cast<std::ptrdiff_t>(offset));
            }
            disk->flush();
        }
        EXPECT_GT(node2.maps_fetched(), 0u); // the data went by block map, not via FUSE
        {
            auto disk = godwit::vhd::VhdImage::open("/vms/base.vhd", false, store3);
            ASSERT_EQ(disk->size(), create.size);
            std::vector<std::byte> back(create.size);
            disk->read(0, back.data(), back.size());
            EXPECT_TRUE(back == model) << "node 3 reads what node 2 wrote";
        }
        // A differencing child on node 3: parent found on the volume, reads fall through.
        godwit::vhd::CreateOptions child;
        child.type = godwit::vhd::DiskType::differencing;
        child.parent = "/vms/base.vhd";
        node3.make_directory("/vms/children");
        godwit::vhd::VhdImage::create("/vms/children/c.vhd", child, store3);
        {
            auto disk = godwit::vhd::VhdImage::open("/vms/children/c.vhd", true, store3);
            ASSERT_NE(disk->parent(), nullptr);
            EXPECT_EQ(CsvFileStore::normalize(disk->parent_path()), "/vms/base.vhd");
            auto data = model::pattern(999, 4096);
            disk->write(8192, data.data(), data.size());
            disk->flush();
            std::copy(data.begin(), data.end(), model.begin() + 8192);
            std::vector<std::byte> back(create.size);
            disk->read(0, back.data(), back.size());
            EXPECT_TRUE(back == model) << "child over parent";
        }
        // A truncated disk is refused with a reason, not read past its end.
        {
            auto raw = store2.open("/vms/base.vhd", godwit::vhd::OpenMode::read_write);
            raw->truncate(1000); // the footer copy survives, the header does not
        }
        EXPECT_THROW(godwit::vhd::VhdImage::open("/vms/base.vhd", false, store2), godwit::Error);
    }
    EXPECT_TRUE(cluster.stop_and_check());
}

// Snapshots with nodes writing directly: the snapshot is one point in time of a writer that
// never stops (every block as it was after some write k, none later), node 3 reads it
// through its own block maps while node 2's next writes copy the shared blocks first, a VHD
// in the snapshot opens read-only on another node, and a release frees the blocks.
TEST(CsvCluster, SnapshotIsConsistentWhileNodesWrite) {
    CoordinatorOnImage cluster("snap", 64ull << 20);
    constexpr std::uint64_t kBlocks = 64;
    auto stamp_block = [](std::uint64_t stamp) {
        std::vector<std::byte> block(kBlockSize);
        for (std::size_t i = 0; i < block.size(); i += 8) {
            std::memcpy(block.data() + i, &stamp, 8);
        }
        return block;
    };
    auto stamp_of = [](const std::vector<std::byte>& data, std::uint64_t b) {
        std::uint64_t stamp = 0;
        std::memcpy(&stamp, data.data() + b * kBlockSize, 8);
        for (std::size_t i = 0; i < kBlockSize; i += 8) {
            std::uint64_t v = 0;
            std::memcpy(&v, data.data() + b * kBlockSize + i, 8);
            if (v != stamp) {
                return UINT64_MAX; // a torn block
            }
        }
        return stamp;
    };
    {
        NodeOnImage n2(cluster, 2), n3(cluster, 3);
        NodeClient &node2 = n2.client, &node3 = n3.client;
        CsvFileStore &store2 = n2.store, &store3 = n3.store;
        node2.make_directory("/vms");
        node2.create("/vms/log", kBlocks * kBlockSize);
        godwit::vhd::CreateOptions create;
        create.size = 8 << 20;
        create.block_size = 1 << 20;
        godwit::vhd::VhdImage::create("/vms/disk.vhd", create, store2);
        auto before = model::pattern(5, 300000);
        {
            auto disk = godwit::vhd::VhdImage::open("/vms/disk.vhd", true, store2);
            disk->write(4096, before.data(), before.size());
            disk->flush();
        }

        // Node 2 writes block i % 64 with stamp i, one write after the other, throughout.
        std::atomic<bool> stop{false};
        std::atomic<std::uint64_t> written{0};
        std::thread writer([&] {
            const std::uint64_t h = node2.open("/vms/log");
            for (std::uint64_t i = 1; !stop; ++i) {
                node2.write(h, (i % kBlocks) * kBlockSize, stamp_block(i));
                written = i;
            }
            node2.close(h);
        });
        while (written < 200) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        const std::uint64_t revocations_before = node2.revocations_received();
        auto taken = node3.snapshot("before-upgrade");
        EXPECT_TRUE(taken.directory);
        const std::uint64_t at_snapshot = written;
        while (written < at_snapshot + 200) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        stop = true;
        writer.join();
        EXPECT_GT(node2.revocations_received(), revocations_before) << "the freeze took its map";
        EXPECT_GT(node2.copies_requested(), 0u) << "writes after the snapshot copied first";

        // The snapshot, read on node 3 through its own maps: one point in time.
        const std::uint64_t hs = node3.open("/.snapshots/before-upgrade/vms/log");
        std::vector<std::byte> snap(kBlocks * kBlockSize);
        ASSERT_EQ(node3.read(hs, 0, snap), snap.size());
        std::uint64_t k = 0;
        for (std::uint64_t b = 0; b < kBlocks; ++b) {
            ASSERT_NE(stamp_of(snap, b), UINT64_MAX) << "torn block " << b;
            k = std::max(k, stamp_of(snap, b));
        }
        EXPECT_GE(k, 200u);
        EXPECT_LE(k, at_snapshot + 1);
        for (std::uint64_t b = 0; b < kBlocks; ++b) {
            const std::uint64_t expected = k >= b ? k - (k - b) % kBlocks : 0;
            EXPECT_EQ(stamp_of(snap, b), expected) << "block " << b << " at point " << k;
        }
        EXPECT_THROW(node3.write(hs, 0, stamp_block(1)), godwit::Error); // read-only
        // The live file went on past the snapshot.
        const std::uint64_t hl = node3.open("/vms/log");
        std::vector<std::byte> live(kBlocks * kBlockSize);
        ASSERT_EQ(node3.read(hl, 0, live), live.size());
        std::uint64_t live_max = 0;
        for (std::uint64_t b = 0; b < kBlocks; ++b) {
            live_max = std::max(live_max, stamp_of(live, b));
        }
        EXPECT_EQ(live_max, written.load());
        node3.close(hl);
        node3.close(hs);

        // The VHD: rewritten live on node 2, the snapshot's copy opens on node 3 unchanged.
        {
            auto disk = godwit::vhd::VhdImage::open("/vms/disk.vhd", true, store2);
            auto after = model::pattern(6, 300000);
            disk->write(4096, after.data(), after.size());
            disk->flush();
        }
        {
            auto disk = godwit::vhd::VhdImage::open("/.snapshots/before-upgrade/vms/disk.vhd",
                                                    false, store3);
            std::vector<std::byte> back(before.size());
            disk->read(4096, back.data(), back.size());
            EXPECT_TRUE(back == before) << "the snapshot's disk is the disk before";
        }
        auto list = node2.snapshots();
        ASSERT_EQ(list.size(), 1u);
        EXPECT_EQ(list[0].name, "before-upgrade");
        EXPECT_THROW(node2.snapshot("before-upgrade"), godwit::Error);
        EXPECT_THROW(node2.remove("/.snapshots/before-upgrade/vms/log"), godwit::Error);
        node2.release_snapshot("before-upgrade");
        EXPECT_TRUE(node3.snapshots().empty());
        EXPECT_THROW(node3.stat("/.snapshots/before-upgrade"), godwit::Error);
        // A node that holds a map asks for the snapshot itself: its map comes back on the
        // connection it asked on (the coordinator keeps reading it), well within a map lease.
        const std::uint64_t h2 = node2.open("/vms/log");
        node2.write(h2, 0, stamp_block(7));
        const auto asked = std::chrono::steady_clock::now();
        node2.snapshot("second");
        EXPECT_LT(std::chrono::steady_clock::now() - asked, std::chrono::seconds(1));
        node2.write(h2, 0, stamp_block(8)); // copies, then writes
        node2.close(h2);
        node2.release_snapshot("second");
    }
    EXPECT_TRUE(cluster.stop_and_check());
}
