// CSV benchmark: direct-I/O write throughput of a non-coordinator node (through block maps
// from the coordinator, over TCP on 127.0.0.1) as a fraction of raw LUN throughput measured
// in the same run on the same image, plus metadata operations per second through the
// coordinator, and a fixed VHD written through the direct API (CsvFileStore: the VHD library
// over the node client, no FUSE) as a fraction of the node's own direct writes. Prints one
// JSON document. Usage: csv_bench [IMAGE_DIR] [MiB]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "godwit/csv/coordinator.hpp"
#include "godwit/csv/csv_file_store.hpp"
#include "godwit/csv/node_client.hpp"
#include "godwit/csv/volume.hpp"
#include "godwit/error.hpp"
#include "godwit/logging.hpp"
#include "godwit/vhd/vhd_image.hpp"

using namespace godwit::csv;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

} // namespace

int run(int argc, char** argv) {
    const std::filesystem::path dir = argc > 1 ? argv[1] : std::filesystem::temp_directory_path();
    const std::uint64_t mib = argc > 2 ? std::stoull(argv[2]) : 256;
    const std::uint64_t bytes = mib << 20;
    const std::string image = (dir / ("csv-bench-" + std::to_string(::getpid()) + ".img")).string();
    constexpr std::size_t kChunk = 1 << 20;
    // Volume: two files of `bytes` (the node's, the VHD) and metadata; then the raw area.
    PosixBlockDevice::create_image(image, bytes * 3 + (64 << 20));
    AlignedBuffer chunk(kChunk);
    for (std::size_t i = 0; i < kChunk; ++i) {
        chunk.data()[i] = static_cast<std::byte>(i * 31);
    }

    // Raw LUN: sequential O_DIRECT writes to the second half of the image (outside the
    // volume), then a flush. One untimed pass first, so the image file's blocks exist, as the
    // fixed VHD's do; measured before and after the node run to even out a shared machine.
    PosixBlockDevice raw(image, PosixBlockDevice::Access::read_write, true);
    const std::uint64_t raw_base = 2 * bytes + (32 << 20);
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
    f.size_bytes = 2 * bytes + (32 << 20);
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
        {"note",
         "image file on the build host's file system; coordinator in-process over TCP 127.0.0.1; "
         "redirected: the node's LUN descriptor fails and its data goes through the coordinator "
         "(1 MiB messages over TCP); failover pause is measured by the csv_failover test"}};
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
}

int main(int argc, char** argv) {
    godwit::init_logging(spdlog::level::warn); // logs on stderr: stdout is the JSON alone
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "csv_bench: %s\n", e.what());
        return 1;
    }
}
