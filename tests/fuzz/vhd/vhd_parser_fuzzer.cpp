// libFuzzer target: arbitrary bytes as a VHD file. Opening, reading every block's first and
// last sector, and checking must either work or throw godwit::Error — never crash, hang or
// touch memory out of bounds (ASan/UBSan are on).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "godwit/error.hpp"
#include "godwit/vhd/vhd_image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::string path =
        "/dev/shm/godwit-vhd-fuzz-" + std::to_string(::getpid()) + ".vhd";
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr)
        return 0;
    std::fwrite(data, 1, size, f);
    std::fclose(f);
    try {
        auto img = godwit::vhd::VhdImage::open(path, false);
        std::vector<std::uint8_t> buf(4096);
        std::uint64_t step =
            img->type() == godwit::vhd::DiskType::fixed ? (1u << 20) : img->block_size();
        for (std::uint64_t off = 0, n = 0; off < img->size() && n < 64; off += step, ++n) {
            std::size_t len =
                static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), img->size() - off));
            img->read(off, buf.data(), len);
        }
        (void)img->allocation_map();
    } catch (const godwit::Error&) {
    }
    (void)godwit::vhd::VhdImage::check(path);
    return 0;
}
