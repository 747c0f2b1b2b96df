// Random I/O against an in-memory model: writes of random sizes at random offsets (across
// block boundaries) into a differencing chain three deep, verified byte for byte, also from
// several threads at once.
#include "godwit/vhd/vhd_image.hpp"

#include <unistd.h>

#include <filesystem>
#include <random>
#include <thread>

#include <gtest/gtest.h>

namespace godwit::vhd {
namespace fs = std::filesystem;
namespace {

CreateOptions opts(DiskType t, std::uint64_t size, std::uint32_t block = default_block_size,
                   std::string parent = {}) {
    CreateOptions o;
    o.type = t;
    o.size = size;
    o.block_size = block;
    o.parent = std::move(parent);
    return o;
}

TEST(VhdStress, DifferencingChainThreeDeepMatchesModel) {
    fs::path dir = fs::temp_directory_path() / ("godwit-vhd-stress-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    constexpr std::uint64_t size = 16u << 20;
    constexpr std::uint32_t block = 1u << 20; // small blocks: more boundaries
    std::vector<std::uint8_t> model(size, 0);
    std::mt19937_64 rng(12345);
    std::vector<std::string> chain = {(dir / "l0.vhd").string(), (dir / "l1.vhd").string(),
                                      (dir / "l2.vhd").string()};
    VhdImage::create(chain[0], opts(DiskType::dynamic, size, block));
    for (int level = 0; level < 3; ++level) {
        if (level > 0)
            VhdImage::create(chain[level],
                             opts(DiskType::differencing, 0, block, chain[level - 1]));
        auto img = VhdImage::open(chain[level], true);
        for (int i = 0; i < 150; ++i) {
            std::uint64_t len = 1 + rng() % (3 * block / 2);
            std::uint64_t off = rng() % (size - len);
            std::vector<std::uint8_t> data(len);
            for (auto& b : data)
                b = static_cast<std::uint8_t>(rng());
            img->write(off, data.data(), len);
            std::copy(data.begin(), data.end(), model.begin() + static_cast<std::ptrdiff_t>(off));
            if (i % 40 == 0)
                img->flush();
        }
        img->flush();
    }
    auto top = VhdImage::open(chain[2], false);
    std::vector<std::uint8_t> back(size);
    top->read(0, back.data(), size);
    EXPECT_TRUE(back == model) << "chain content differs from the model";
    // Concurrent readers see the same thing.
    std::vector<std::thread> readers;
    std::atomic<int> mismatches{0};
    for (int t = 0; t < 4; ++t) {
        readers.emplace_back([&, t] {
            std::mt19937_64 r(t);
            std::vector<std::uint8_t> buf(70000);
            for (int i = 0; i < 50; ++i) {
                std::uint64_t off = r() % (size - buf.size());
                top->read(off, buf.data(), buf.size());
                if (!std::equal(buf.begin(), buf.end(),
                                model.begin() + static_cast<std::ptrdiff_t>(off)))
                    ++mismatches;
            }
        });
    }
    for (auto& t : readers)
        t.join();
    EXPECT_EQ(mismatches.load(), 0);
    for (const auto& p : chain)
        EXPECT_TRUE(VhdImage::check(p).empty()) << p;
    fs::remove_all(dir);
}

TEST(VhdStress, ConcurrentWritersOnDisjointRanges) {
    fs::path dir = fs::temp_directory_path() / ("godwit-vhd-mt-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::string p = (dir / "mt.vhd").string();
    constexpr std::uint64_t size = 32u << 20;
    VhdImage::create(p, opts(DiskType::dynamic, size));
    auto img = VhdImage::open(p, true);
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t) {
        writers.emplace_back([&, t] {
            std::vector<std::uint8_t> buf(64 * 1024, static_cast<std::uint8_t>(t + 1));
            for (std::uint64_t off = t * (size / 4); off < (t + 1) * (size / 4);
                 off += buf.size() * 2) {
                img->write(off, buf.data(), buf.size());
            }
        });
    }
    for (auto& w : writers)
        w.join();
    img->flush();
    std::vector<std::uint8_t> buf(64 * 1024);
    for (int t = 0; t < 4; ++t) {
        img->read(t * (size / 4), buf.data(), buf.size());
        EXPECT_TRUE(
            std::all_of(buf.begin(), buf.end(), [&](std::uint8_t b) { return b == t + 1; }));
        img->read(t * (size / 4) + buf.size(), buf.data(), buf.size());
        EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](std::uint8_t b) { return b == 0; }));
    }
    img.reset();
    EXPECT_TRUE(VhdImage::check(p).empty());
    fs::remove_all(dir);
}

} // namespace
} // namespace godwit::vhd
