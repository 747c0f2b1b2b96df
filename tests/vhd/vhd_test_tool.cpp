// Test driver for the VHD library, used by the interop and crash-consistency scripts.
//   vhd_test_tool write FILE OFFSET LENGTH BYTE     write LENGTH bytes of BYTE, flush
//   vhd_test_tool crash-writer FILE LOG SEED         write random extents forever; after each
//                                                    flush() append them to LOG (fsync'ed)
//   vhd_test_tool verify FILE LOG                    every extent in LOG (replayed in order)
//                                                    reads back exactly
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "godwit/error.hpp"
#include "godwit/vhd/vhd_image.hpp"

using namespace godwit;
using namespace godwit::vhd;

namespace {

struct Extent {
    std::uint64_t offset, length;
    unsigned byte;
};

int write_cmd(const std::string& file, std::uint64_t offset, std::uint64_t length, unsigned byte) {
    auto img = VhdImage::open(file, true);
    std::vector<std::uint8_t> buf(length, static_cast<std::uint8_t>(byte));
    img->write(offset, buf.data(), buf.size());
    img->flush();
    return 0;
}

// Writes never overlap earlier ones (a cursor moves forward past everything in the log), so
// a flushed extent can only read back as itself: nothing later may legitimately replace it.
[[noreturn]] void crash_writer(const std::string& file, const std::string& log, unsigned seed) {
    auto img = VhdImage::open(file, true);
    std::uint64_t cursor = 0;
    {
        std::ifstream in(log);
        Extent e{};
        while (in >> e.offset >> e.length >> e.byte)
            cursor = std::max(cursor, e.offset + e.length);
    }
    cursor += 64 * 1024; // also past unflushed writes of the previous run, most likely
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0)
        std::exit(2);
    std::mt19937_64 rng(seed);
    std::vector<Extent> batch;
    for (std::uint64_t n = 0;; ++n) {
        std::uint64_t length = 512 * (1 + rng() % 600); // up to ~300 KiB, across blocks
        std::uint64_t offset = cursor + 512 * (rng() % 64);
        if (offset + length > img->size()) {
            std::cerr << "crash-writer: disk full\n";
            std::exit(4);
        }
        cursor = offset + length;
        unsigned byte = 1 + static_cast<unsigned>(rng() % 255);
        std::vector<std::uint8_t> buf(length, static_cast<std::uint8_t>(byte));
        img->write(offset, buf.data(), length);
        batch.push_back({offset, length, byte});
        if (batch.size() == 1 + rng() % 8) {
            img->flush();
            std::string lines;
            for (const auto& e : batch) {
                lines += std::to_string(e.offset) + " " + std::to_string(e.length) + " " +
                         std::to_string(e.byte) + "\n";
            }
            if (::write(fd, lines.data(), lines.size()) != static_cast<ssize_t>(lines.size()) ||
                ::fsync(fd) != 0)
                std::exit(3);
            batch.clear();
        }
    }
}

int verify(const std::string& file, const std::string& log) {
    // Replay the log into a sparse model: byte value per 512-byte sector.
    std::map<std::uint64_t, unsigned> sectors;
    std::ifstream in(log);
    Extent e{};
    std::size_t extents = 0;
    while (in >> e.offset >> e.length >> e.byte) {
        for (std::uint64_t s = e.offset / 512; s < (e.offset + e.length) / 512; ++s)
            sectors[s] = e.byte;
        ++extents;
    }
    auto img = VhdImage::open(file, false);
    std::vector<std::uint8_t> buf(512);
    std::size_t bad = 0;
    for (auto [s, byte] : sectors) {
        img->read(s * 512, buf.data(), 512);
        for (auto b : buf) {
            if (b != byte) {
                ++bad;
                break;
            }
        }
    }
    std::cout << "verified " << extents << " flushed extents (" << sectors.size() << " sectors), "
              << bad << " sectors wrong\n";
    return bad == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    try {
        std::string cmd = argc > 1 ? argv[1] : "";
        if (cmd == "write" && argc == 6) {
            return write_cmd(argv[2], std::stoull(argv[3]), std::stoull(argv[4]),
                             static_cast<unsigned>(std::stoul(argv[5])));
        }
        if (cmd == "crash-writer" && argc == 5)
            crash_writer(argv[2], argv[3], static_cast<unsigned>(std::stoul(argv[4])));
        if (cmd == "verify" && argc == 4)
            return verify(argv[2], argv[3]);
        std::cerr << "usage: vhd_test_tool write FILE OFFSET LENGTH BYTE | crash-writer FILE LOG "
                     "SEED | verify FILE LOG\n";
        return 2;
    } catch (const Error& e) {
        std::cerr << "vhd_test_tool: " << e.what() << '\n';
        return exit_code_for(e.code());
    }
}
