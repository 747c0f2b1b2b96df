#include "platform/multiboot2.hpp"

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

namespace godwit::hv {
namespace {

class Mb2Builder {
  public:
    Mb2Builder() { bytes_.resize(8); }
    void tag(u32 type, const std::vector<u8>& body) {
        u32 size = static_cast<u32>(8 + body.size());
        put32(type);
        put32(size);
        bytes_.insert(bytes_.end(), body.begin(), body.end());
        while (bytes_.size() % 8)
            bytes_.push_back(0);
    }
    std::vector<u8> finish() {
        tag(0, {});
        u32 total = static_cast<u32>(bytes_.size());
        std::memcpy(bytes_.data(), &total, 4);
        return bytes_;
    }

  private:
    void put32(u32 v) {
        for (int i = 0; i < 4; ++i)
            bytes_.push_back(static_cast<u8>(v >> (8 * i)));
    }
    std::vector<u8> bytes_;
};

std::vector<u8> le(u64 v, int n) {
    std::vector<u8> b;
    for (int i = 0; i < n; ++i)
        b.push_back(static_cast<u8>(v >> (8 * i)));
    return b;
}
std::vector<u8> cat(std::initializer_list<std::vector<u8>> parts) {
    std::vector<u8> out;
    for (auto& p : parts)
        out.insert(out.end(), p.begin(), p.end());
    return out;
}

TEST(Multiboot2, ParsesTags) {
    Mb2Builder b;
    b.tag(1, {'s', 'e', 'l', 'f', 't', 'e', 's', 't', 0});
    b.tag(3, cat({le(0x400000, 4), le(0x500000, 4), {'v', 'm', 'l', 'i', 'n', 'u', 'z', 0}}));
    b.tag(6, cat({le(24, 4), le(0, 4), le(0, 8), le(0x9FC00, 8), le(1, 4), le(0, 4),
                  le(0x100000, 8), le(0x7EE0000, 8), le(1, 4), le(0, 4)}));
    b.tag(14, cat({{'R', 'S', 'D', ' ', 'P', 'T', 'R', ' '}, std::vector<u8>(12, 0)}));
    auto info = b.finish();
    Multiboot2Info out;
    ASSERT_EQ(parse_multiboot2(info.data(), info.size(), out), nullptr);
    EXPECT_STREQ(out.cmdline, "selftest");
    ASSERT_EQ(out.module_count, 1u);
    EXPECT_EQ(out.modules[0].start, 0x400000u);
    EXPECT_STREQ(out.modules[0].cmdline, "vmlinuz");
    ASSERT_EQ(out.region_count, 2u);
    EXPECT_EQ(out.regions[1].addr, 0x100000u);
    EXPECT_EQ(out.regions[1].length, 0x7EE0000u);
    EXPECT_EQ(out.rsdp_copy_length, 20u);
}

TEST(Multiboot2, RejectsMalformed) {
    Multiboot2Info out;
    EXPECT_NE(parse_multiboot2(nullptr, 0, out), nullptr);
    Mb2Builder b;
    b.tag(1, {'x', 'y'}); // not NUL-terminated
    auto bad_cmdline = b.finish();
    EXPECT_NE(parse_multiboot2(bad_cmdline.data(), bad_cmdline.size(), out), nullptr);

    Mb2Builder ok;
    auto good = ok.finish();
    EXPECT_EQ(parse_multiboot2(good.data(), good.size(), out), nullptr);
    EXPECT_NE(parse_multiboot2(good.data(), good.size() - 1, out), nullptr); // total > available

    std::vector<u8> overrun = good;
    overrun[12] = 0xFF; // end tag claims a huge size
    EXPECT_NE(parse_multiboot2(overrun.data(), overrun.size(), out), nullptr);

    Mb2Builder m;
    m.tag(6, cat({le(20, 4), le(0, 4)})); // entry size not a multiple of 8
    auto bad_map = m.finish();
    EXPECT_NE(parse_multiboot2(bad_map.data(), bad_map.size(), out), nullptr);

    std::vector<u8> no_end(16, 0);
    no_end[0] = 16;
    no_end[8] = 1; // a cmdline tag of size 0
    EXPECT_NE(parse_multiboot2(no_end.data(), no_end.size(), out), nullptr);
}

} // namespace
} // namespace godwit::hv
