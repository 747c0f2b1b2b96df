// CSV benchmark: direct-I/O write throughput of a non-coordinator node (through block maps
// from the coordinator, over TCP on 127.0.0.1) as a fraction of raw LUN throughput measured
// in the same run on the same image, plus metadata operations per second through the
// coordinator, and a fixed VHD written through the direct API (CsvFileStore: the VHD library
// over the node client, no FUSE) as a fraction of the node's own direct writes; a snapshot
// taken while the node has the file mapped (how long direct writes were frozen), the first
// writes after it (copy-on-write) and the next ones as fractions of the plain direct writes;
// and the coordinator failover pause: two `godwit csv node` processes (the coordinator is
// SIGKILLed) while this process writes, the longest write being the pause. Prints one JSON
// document. Usage: csv_bench [IMAGE_DIR] [MiB]
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <nlohmann/json.hpp>

#include "godwit/csv/coordinator.hpp"
#include "godwit/csv/csv_file_store.hpp"
#include "godwit/csv/node_client.hpp"
#include "godwit/csv/volume.hpp"
#include "godwit/error.hpp"
#include "godwit/large_buffers.hpp"
#include "godwit/logging.hpp"
#include "godwit/vhd/vhd_image.hpp"

using namespace godwit::csv;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

std::uint16_t free_port() {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
}

// Coordinator failover pause seen by a writing node: node 1 (coordinator) and node 2
// (standby) are `godwit csv node` processes on their own volume; this process writes 64 KiB
// pieces through a node client; node 1 is SIGKILLed; the longest write is the pause.
struct Failover {
    double pause_ms = 0;
    double lease_ms = 1000;
    double map_lease_ms = 500;
    std::uint64_t writes = 0;
};

Failover failover_pause(const std::filesystem::path& dir, const std::string& godwit) {
    Failover out;
    const std::string image =
        (dir / ("csv-bench-failover-" + std::to_string(::getpid()) + ".img")).string();
    PosixBlockDevice::create_image(image, 64 << 20);
    {
        PosixBlockDevice dev(image, PosixBlockDevice::Access::read_write, true);
        format_volume(dev, FormatOptions{"failover", 0, 0, 0});
    }
    const std::uint16_t ports[2] = {free_port(), free_port()};
    const std::string members =
        "1=127.0.0.1:" + std::to_string(ports[0]) + ",2=127.0.0.1:" + std::to_string(ports[1]);
    pid_t pids[2] = {-1, -1};
    std::string logs[2];
    auto cleanup = [&] {
        for (pid_t pid : pids) {
            if (pid > 0) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, nullptr, 0);
            }
        }
        std::filesystem::remove(image);
        for (const auto& log : logs) {
            std::filesystem::remove(log);
        }
    };
    try {
        for (int n = 0; n < 2; ++n) {
            logs[n] = image + ".node" + std::to_string(n + 1) + ".log";
            std::vector<std::string> args = {
                godwit,      "csv",   "node",        image,        "--id", std::to_string(n + 1),
                "--members", members, "--plaintext", "--lease-ms", "1000", "--map-lease-ms",
                "500"};
            if (n == 0) {
                args.push_back("--coordinator");
            }
            std::vector<char*> argv;
            for (auto& a : args) {
                argv.push_back(a.data());
            }
            argv.push_back(nullptr);
            posix_spawn_file_actions_t actions;
            posix_spawn_file_actions_init(&actions);
            posix_spawn_file_actions_addopen(&actions, 1, logs[n].c_str(),
                                             O_WRONLY | O_CREAT | O_TRUNC, 0644);
            posix_spawn_file_actions_adddup2(&actions, 1, 2);
            const int rc =
                posix_spawn(&pids[n], godwit.c_str(), &actions, nullptr, argv.data(), environ);
            posix_spawn_file_actions_destroy(&actions);
            if (rc != 0) {
                throw godwit::Error(godwit::ErrorCode::io, "cannot start " + godwit);
            }
            // Wait for "running" in its log.
            for (int i = 0;; ++i) {
                std::ifstream f(logs[n]);
                std::string text((std::istreambuf_iterator<char>(f)), {});
                if (text.find("running") != std::string::npos) {
                    break;
                }
                if (i > 200) {
                    throw godwit::Error(godwit::ErrorCode::timeout, "node " +
                                                                        std::to_string(n + 1) +
                                                                        " did not start: " + text);
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        }
        PosixBlockDevice lun(image, PosixBlockDevice::Access::read_write, true);
        NodeOptions o;
        o.listeners = {Endpoint{"127.0.0.1", ports[0]}, Endpoint{"127.0.0.1", ports[1]}};
        o.node_id = 3;
        o.node_name = "bench";
        o.map_lease = std::chrono::milliseconds(500);
        o.call_timeout = std::chrono::milliseconds(3000);
        NodeClient node(o, lun);
        node.create("/disk", 16 << 20);
        const auto h = node.open("/disk");
        AlignedBuffer piece(64 << 10);
        const auto begin = Clock::now();
        Clock::time_point killed{};
        double longest = 0;
        for (std::uint64_t i = 0;; ++i) {
            const auto t0 = Clock::now();
            node.write(h, (i * 7919 % 256) * piece.size(), piece.span());
            longest = std::max(longest, seconds_since(t0) * 1000);
            ++out.writes;
            if (killed == Clock::time_point{} && seconds_since(begin) > 1.0) {
                longest = 0; // only the pause the failover causes
                ::kill(pids[0], SIGKILL);
                ::waitpid(pids[0], nullptr, 0);
                pids[0] = -1;
                killed = Clock::now();
            }
            if (killed != Clock::time_point{} && seconds_since(killed) > longest / 1000 + 1.5) {
                break;
            }
        }
        node.close(h);
        out.pause_ms = longest;
    } catch (...) {
        cleanup();
        throw;
    }
    cleanup();
    return out;
}

} // namespace

int run(int argc, char** argv) {
    const std::filesystem::path dir = argc > 1 ? argv[1] : std::filesystem::temp_directory_path();
    const std::uint64_t mib = argc > 2 ? std::stoull(argv[2]) : 256;
    const std::uint64_t bytes = mib << 20;
    const std::string image = (dir / ("csv-bench-" + std::to_string(::getpid()) + ".img")).string();
    constexpr std::size_t kChunk = 1 << 20;
    // The failover first, before this process starts threads of its own.
    const std::string godwit =
        (std::filesystem::canonical("/proc/self/exe").parent_path().parent_path() / "bin" /
         "godwit")
            .string();
    const Failover failover = failover_pause(dir, godwit);
    // Volume: two files of `bytes` (the node's, the VHD), room for the copies a snapshot
    // makes, and metadata; then the raw area.
    PosixBlockDevice::create_image(image, bytes * 4 + (64 << 20));
    AlignedBuffer chunk(kChunk);
    for (std::size_t i = 0; i < kChunk; ++i) {
        chunk.data()[i] = static_cast<std::byte>(i * 31);
    }

    // Raw LUN: sequential O_DIRECT writes to the second half of the image (outside the
    // volume), then a flush. One untimed pass first, so the image file's blocks exist, as the
    // fixed VHD's do; measured before and after the node run to even out a shared machine.
    PosixBlockDevice raw(image, PosixBlockDevice::Access::read_write, true);
    const std::uint64_t raw_base = 3 * bytes + (32 << 20);
    auto raw_pass = [&] {
        auto t0 = Clock::now();
        for (std::uint64_t off = 0; off < bytes; off += kChunk) {
            raw.write(raw_base + off, chunk.span());
        }
        raw.flush();
        return seconds_since(t0);
    };
    raw_pass();
    double raw_seconds = raw_pass();
    auto start = Clock::now();

    // The volume occupies the first part of the image; the coordinator runs in a thread.
    FormatOptions f;
    f.size_bytes = 3 * bytes + (32 << 20);
    f.label = "bench";
    f.inode_count = 1024;
    format_volume(raw, f);
    MountOptions o;
    o.identity = {1, "coordinator"};
    auto volume = Volume::mount(raw, o);
    Coordinator coordinator(*volume, "127.0.0.1", 0);
    std::thread server([&] { coordinator.run(); });

    // The node reaches the LUN through its own path (a symlink), so that the redirected pass
    // can take the path away (as csv_failover does).
    const std::string node_path = image + ".node2";
    std::filesystem::remove(node_path);
    std::filesystem::create_symlink(image, node_path);
    PosixBlockDevice lun(node_path, PosixBlockDevice::Access::read_write, true);
    double node_seconds = 0;
    double redirected_seconds = 0;
    bool stayed_redirected = false;
    double metadata_seconds = 0;
    double allocate_seconds = 0;
    double vhd_seconds = 0;
    double snapshot_seconds = 0;
    double copy_seconds = 0;
    double after_copy_seconds = 0;
    double release_seconds = 0;
    double snapshot_files_seconds = 0;
    int metadata_ops = 0;
    {
        NodeClient node("127.0.0.1", coordinator.port(), lun, 2, "node2");
        start = Clock::now();
        node.create("/bench.vhd", bytes); // a fixed VHD: allocated (and zeroed) up front
        allocate_seconds = seconds_since(start);
        auto h = node.open("/bench.vhd");
        start = Clock::now();
        for (std::uint64_t off = 0; off < bytes; off += kChunk) {
            node.write(h, off, chunk.span());
        }
        lun.flush();
        node_seconds = seconds_since(start);
        // A snapshot while the node holds the file's map; then the same writes again: the
        // first pass copies every granule (copy-on-write), the second writes in place.
        start = Clock::now();
        node.snapshot("bench");
        snapshot_seconds = seconds_since(start);
        auto timed_pass = [&] {
            auto t0 = Clock::now();
            for (std::uint64_t off = 0; off < bytes; off += kChunk) {
                node.write(h, off, chunk.span());
            }
            lun.flush();
            return seconds_since(t0);
        };
        copy_seconds = timed_pass();
        after_copy_seconds = timed_pass();
        start = Clock::now();
        node.release_snapshot("bench");
        release_seconds = seconds_since(start);
        // The same writes into a fixed VHD through the direct API (created untimed: a fixed
        // disk is allocated and zeroed up front).
        {
            CsvFileStore store(node);
            godwit::vhd::CreateOptions disk;
            disk.type = godwit::vhd::DiskType::fixed;
            disk.size = bytes;
            godwit::vhd::VhdImage::create("/disk.vhd", disk, store);
            auto vhd = godwit::vhd::VhdImage::open("/disk.vhd", true, store);
            start = Clock::now();
            for (std::uint64_t off = 0; off < bytes; off += kChunk) {
                vhd->write(off, chunk.data(), kChunk);
            }
            vhd->flush();
            vhd_seconds = seconds_since(start);
        }
        // Redirected mode: the path is gone and I/O on it fails; the same writes go through
        // the coordinator.
        std::filesystem::remove(node_path);
        lun.sever();
        start = Clock::now();
        for (std::uint64_t off = 0; off < bytes; off += kChunk) {
            node.write(h, off, chunk.span());
        }
        volume->flush();
        redirected_seconds = seconds_since(start);
        stayed_redirected = node.state() == IoState::redirected;
        std::filesystem::create_symlink(image, node_path);
        node.close(h);
        start = Clock::now();
        for (int i = 0; i < 200; ++i) {
            node.create("/m" + std::to_string(i), 0);
            ++metadata_ops;
        }
        metadata_seconds = seconds_since(start);
        // A snapshot of a namespace with those files too: the copy is one inode per file.
        start = Clock::now();
        node.snapshot("files");
        snapshot_files_seconds = seconds_since(start);
        node.release_snapshot("files");
    }
    raw_seconds = (raw_seconds + raw_pass()) / 2;
    coordinator.stop();
    server.join();
    volume.reset();
    std::filesystem::remove(image);
    std::filesystem::remove(node_path);
    if (!stayed_redirected) {
        throw godwit::Error(godwit::ErrorCode::failed, "the node did not stay redirected");
    }

    const double raw_mbps = static_cast<double>(mib) / raw_seconds;
    const double node_mbps = static_cast<double>(mib) / node_seconds;
    nlohmann::ordered_json out = {
        {"benchmark", "csv"},
        {"bytes", bytes},
        {"raw_lun_write_mib_per_s", raw_mbps},
        {"node_direct_write_mib_per_s", node_mbps},
        {"node_direct_fraction_of_raw", node_mbps / raw_mbps},
        {"vhd_direct_api_write_mib_per_s", static_cast<double>(mib) / vhd_seconds},
        {"vhd_direct_api_fraction_of_node_direct", node_seconds / vhd_seconds},
        {"node_redirected_write_mib_per_s", static_cast<double>(mib) / redirected_seconds},
        {"redirected_fraction_of_direct", node_seconds / redirected_seconds},
        {"target_fraction", 0.9},
        {"fixed_file_allocate_mib_per_s", static_cast<double>(mib) / allocate_seconds},
        {"metadata_creates_per_s_through_coordinator", metadata_ops / metadata_seconds},
        {"snapshot_take_ms", snapshot_seconds * 1000},
        {"copy_on_write_mib_per_s", static_cast<double>(mib) / copy_seconds},
        {"copy_on_write_fraction_of_direct", node_seconds / copy_seconds},
        {"after_copy_fraction_of_direct", node_seconds / after_copy_seconds},
        {"snapshot_release_ms", release_seconds * 1000},
        {"snapshot_take_ms_with_200_more_files", snapshot_files_seconds * 1000},
        {"failover_pause_ms", failover.pause_ms},
        {"failover_lease_ms", failover.lease_ms},
        {"failover_map_lease_ms", failover.map_lease_ms},
        {"failover_writes", failover.writes},
        {"note",
         "image file on the build host's file system; coordinator in-process over TCP 127.0.0.1; "
         "redirected: the node's LUN descriptor fails and its data goes through the coordinator "
         "(1 MiB messages over TCP); snapshot_take_ms includes taking the node's map back; "
         "failover: two `godwit csv node` processes, the coordinator SIGKILLed under 64 KiB "
         "writes, pause = the longest write (one lease to notice, a takeover, the nodes' "
         "re-registration)"}};
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
}

int main(int argc, char** argv) {
    godwit::keep_large_buffers();              // as `godwit csv node` does
    godwit::init_logging(spdlog::level::warn); // logs on stderr: stdout is the JSON alone
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "csv_bench: %s\n", e.what());
        return 1;
    }
}
