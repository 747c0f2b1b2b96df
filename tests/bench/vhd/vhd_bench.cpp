// VHD I/O throughput as a fraction of the same I/O on a raw file, measured in the same run.
// Prints one JSON document. Not a test: numbers depend on the machine.
//   vhd_bench [--dir DIR] [--size-mib N]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "godwit/vhd/vhd_image.hpp"

using namespace godwit::vhd;
namespace fs = std::filesystem;

namespace {

struct Target {
    std::function<void(std::uint64_t, void*, std::size_t)> read;
    std::function<void(std::uint64_t, const void*, std::size_t)> write;
    std::function<void()> flush;
};

double seconds_of(const std::function<void()>& f) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Bytes per second of one workload on one target.
double run(const std::string& workload, Target& t, std::uint64_t size) {
    std::vector<std::uint8_t> big(1 << 20, 0x5A), small(4096, 0xA5);
    std::mt19937_64 rng(42);
    const std::uint64_t random_ops = 8192;
    if (workload == "seq_write_1m") {
        double s = seconds_of([&] {
            for (std::uint64_t off = 0; off < size; off += big.size())
                t.write(off, big.data(), big.size());
            t.flush();
        });
        return size / s;
    }
    if (workload == "seq_read_1m") {
        double s = seconds_of([&] {
            for (std::uint64_t off = 0; off < size; off += big.size())
                t.read(off, big.data(), big.size());
        });
        return size / s;
    }
    if (workload == "rand_write_4k") {
        double s = seconds_of([&] {
            for (std::uint64_t i = 0; i < random_ops; ++i)
                t.write((rng() % (size / 4096)) * 4096, small.data(), 4096);
            t.flush();
        });
        return random_ops * 4096 / s;
    }
    double s = seconds_of([&] { // rand_read_4k
        for (std::uint64_t i = 0; i < random_ops; ++i)
            t.read((rng() % (size / 4096)) * 4096, small.data(), 4096);
    });
    return random_ops * 4096 / s;
}

Target raw_target(int fd) {
    return Target{[fd](std::uint64_t o, void* b, std::size_t n) {
                      (void)!::pread(fd, b, n, static_cast<off_t>(o));
                  },
                  [fd](std::uint64_t o, const void* b, std::size_t n) {
                      (void)!::pwrite(fd, b, n, static_cast<off_t>(o));
                  },
                  [fd] { ::fdatasync(fd); }};
}

Target vhd_target(VhdImage& img) {
    return Target{[&img](std::uint64_t o, void* b, std::size_t n) { img.read(o, b, n); },
                  [&img](std::uint64_t o, const void* b, std::size_t n) { img.write(o, b, n); },
                  [&img] { img.flush(); }};
}

} // namespace

int main(int argc, char** argv) {
    std::string dir = fs::temp_directory_path().string();
    std::uint64_t size = 256ull << 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::string(argv[i]) == "--dir")
            dir = argv[i + 1];
        if (std::string(argv[i]) == "--size-mib")
            size = std::stoull(argv[i + 1]) << 20;
    }
    fs::path work = fs::path(dir) / ("godwit-vhd-bench-" + std::to_string(::getpid()));
    fs::create_directories(work);
    nlohmann::ordered_json out;
    out["benchmark"] = "vhd_io";
    out["size_bytes"] = size;
    out["note"] = "ratio = VHD throughput / raw-file throughput for the same workload, same run";
    const char* workloads[] = {"seq_write_1m", "seq_read_1m", "rand_write_4k", "rand_read_4k"};
    // Fresh files for every workload that writes, so "write" means writes into new space
    // (never-allocated blocks, for dynamic disks). Each workload runs `repeats` times with
    // raw, fixed and dynamic interleaved; medians are reported (the page cache and writeback
    // make single runs noisy).
    const int repeats = 5;
    auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    for (const char* w : workloads) {
        bool writes = std::strstr(w, "write") != nullptr;
        std::vector<double> raw_runs, fixed_runs, dynamic_runs;
        for (int r = 0; r < repeats; ++r) {
            fs::remove(work / "raw.img");
            int fd = ::open((work / "raw.img").c_str(), O_RDWR | O_CREAT, 0644);
            (void)!::ftruncate(fd, static_cast<off_t>(size));
            Target raw = raw_target(fd);
            if (!writes)
                run("seq_write_1m", raw, size); // reads read real data
            raw_runs.push_back(run(w, raw, size));
            ::close(fd);
            for (DiskType t : {DiskType::fixed, DiskType::dynamic}) {
                fs::remove(work / "d.vhd");
                CreateOptions o;
                o.type = t;
                o.size = size;
                VhdImage::create((work / "d.vhd").string(), o);
                auto img = VhdImage::open((work / "d.vhd").string(), true);
                Target v = vhd_target(*img);
                if (!writes)
                    run("seq_write_1m", v, size);
                (t == DiskType::fixed ? fixed_runs : dynamic_runs).push_back(run(w, v, size));
            }
        }
        double raw_bps = median(raw_runs), fixed_bps = median(fixed_runs),
               dynamic_bps = median(dynamic_runs);
        out["results"][w] = {{"raw_mib_s", raw_bps / (1 << 20)},
                             {"fixed_mib_s", fixed_bps / (1 << 20)},
                             {"fixed_ratio", fixed_bps / raw_bps},
                             {"dynamic_mib_s", dynamic_bps / (1 << 20)},
                             {"dynamic_ratio", dynamic_bps / raw_bps}};
    }
    fs::remove_all(work);
    std::cout << out.dump(2) << '\n';
    return 0;
}
