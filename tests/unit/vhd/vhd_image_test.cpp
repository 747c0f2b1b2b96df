#include "godwit/vhd/vhd_image.hpp"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "godwit/error.hpp"

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

class VhdImageTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("godwit-vhd-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    std::string path(const std::string& name) { return (dir_ / name).string(); }
    void patch(const std::string& file, std::uint64_t offset, std::vector<std::uint8_t> bytes) {
        std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(offset));
        f.write(reinterpret_cast<const char*>(bytes.data()),
                static_cast<std::streamsize>(bytes.size()));
    }
    fs::path dir_;
};

std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed) {
    std::vector<std::uint8_t> v(n);
    for (std::size_t i = 0; i < n; ++i)
        v[i] = static_cast<std::uint8_t>(seed + i * 7);
    return v;
}

TEST_F(VhdImageTest, EachTypeReadsBackWhatWasWritten) {
    for (DiskType t : {DiskType::fixed, DiskType::dynamic}) {
        std::string p = path(std::string(to_string(t)) + ".vhd");
        VhdImage::create(p, opts(t, 8u << 20));
        auto data = pattern(3 * 4096 + 17, 3);
        {
            auto img = VhdImage::open(p, true);
            img->write(2 * 1024 * 1024 - 4096 + 5, data.data(), data.size()); // crosses a block
            img->flush();
        }
        auto img = VhdImage::open(p, false);
        std::vector<std::uint8_t> back(data.size());
        img->read(2 * 1024 * 1024 - 4096 + 5, back.data(), back.size());
        EXPECT_EQ(back, data) << to_string(t);
        std::uint8_t zero[512];
        img->read(0, zero, sizeof zero);
        EXPECT_TRUE(std::all_of(zero, zero + 512, [](std::uint8_t b) { return b == 0; }));
        EXPECT_TRUE(VhdImage::check(p).empty());
        if (t == DiskType::dynamic) {
            EXPECT_EQ(img->allocated_bytes(), 2u << 21);
        }
    }
}

TEST_F(VhdImageTest, DifferencingFallsThroughToParent) {
    std::string base = path("base.vhd"), child = path("child.vhd");
    VhdImage::create(base, opts(DiskType::dynamic, 4u << 20));
    auto a = pattern(8192, 1);
    {
        auto img = VhdImage::open(base, true);
        img->write(0, a.data(), a.size());
        img->flush();
    }
    VhdImage::create(child, opts(DiskType::differencing, 0, default_block_size, base));
    auto b = pattern(100, 99);
    {
        auto img = VhdImage::open(child, true);
        img->write(1000, b.data(), b.size()); // unaligned: sector read-modify-write from the parent
    }
    auto img = VhdImage::open(child, false);
    ASSERT_NE(img->parent(), nullptr);
    std::vector<std::uint8_t> expect = a;
    std::memcpy(expect.data() + 1000, b.data(), b.size());
    std::vector<std::uint8_t> back(8192);
    img->read(0, back.data(), back.size());
    EXPECT_EQ(back, expect);
    EXPECT_FALSE(img->sector_present(0));
    EXPECT_TRUE(img->sector_present(1));
    EXPECT_TRUE(img->sector_present(2));
    EXPECT_FALSE(img->sector_present(3));
    // Commit merges the child's sectors into the parent.
    img->commit_to_parent();
    auto parent = VhdImage::open(base, false);
    parent->read(0, back.data(), back.size());
    EXPECT_EQ(back, expect);
}

TEST_F(VhdImageTest, OutOfRangeIoIsRefused) {
    std::string p = path("d.vhd");
    VhdImage::create(p, opts(DiskType::dynamic, 1u << 20));
    auto img = VhdImage::open(p, true);
    std::uint8_t b[16];
    EXPECT_THROW(img->read((1u << 20) - 8, b, 16), Error);
    EXPECT_THROW(img->write(1u << 20, b, 1), Error);
    auto ro = VhdImage::open(p, false);
    EXPECT_THROW(ro->write(0, b, 1), Error);
}

TEST_F(VhdImageTest, HostileFiles) {
    std::string p = path("h.vhd");
    VhdImage::create(p, opts(DiskType::dynamic, 8u << 20));
    {
        auto img = VhdImage::open(p, true);
        auto d = pattern(4096, 5);
        img->write(0, d.data(), d.size());
        img->write(4u << 20, d.data(), d.size());
    }
    auto size = fs::file_size(p);
    auto expect_invalid = [&](const std::string& file, const char* what) {
        try {
            VhdImage::open(file, false);
            ADD_FAILURE() << what << ": opened";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::invalid_input) << what << ": " << e.what();
        }
        EXPECT_FALSE(VhdImage::check(file).empty()) << what;
    };
    // Truncated: the second block and the footer are cut off.
    fs::copy_file(p, path("trunc.vhd"));
    fs::resize_file(path("trunc.vhd"), size - 4096);
    expect_invalid(path("trunc.vhd"), "truncated");
    // BAT entry pointing far outside the file.
    fs::copy_file(p, path("bat.vhd"));
    patch(path("bat.vhd"), 1536, {0x7F, 0xFF, 0xFF, 0x00});
    expect_invalid(path("bat.vhd"), "BAT outside file");
    // Two BAT entries pointing at the same block.
    std::vector<std::uint8_t> first(4);
    {
        std::ifstream f(p, std::ios::binary);
        f.seekg(1536);
        f.read(reinterpret_cast<char*>(first.data()), 4);
    }
    fs::copy_file(p, path("overlap.vhd"));
    patch(path("overlap.vhd"), 1536 + 4 * 2, first);
    expect_invalid(path("overlap.vhd"), "overlapping BAT");
    // Absurd BAT size in the header (checksum fixed so only the value is wrong).
    fs::copy_file(p, path("absurd.vhd"));
    {
        std::vector<std::uint8_t> h(1024);
        std::ifstream f(path("absurd.vhd"), std::ios::binary);
        f.seekg(512);
        f.read(reinterpret_cast<char*>(h.data()), 1024);
        DynamicHeader dh = parse_dynamic_header(h.data());
        dh.max_table_entries = 0x7FFFFFFF;
        auto out = serialize_dynamic_header(dh);
        patch(path("absurd.vhd"), 512, std::vector<std::uint8_t>(out.begin(), out.end()));
    }
    expect_invalid(path("absurd.vhd"), "absurd BAT");
    // Bad footer checksum: opens (data is still readable) but check reports it.
    fs::copy_file(p, path("csum.vhd"));
    patch(path("csum.vhd"), size - 512 + 100, {0x42});
    auto problems = VhdImage::check(path("csum.vhd"));
    ASSERT_FALSE(problems.empty());
    EXPECT_NE(problems[0].find("checksum"), std::string::npos);
    // Not a VHD at all.
    { std::ofstream(path("junk.vhd")) << std::string(4096, 'x'); }
    expect_invalid(path("junk.vhd"), "junk");
    { std::ofstream(path("tiny.vhd")) << "abc"; }
    expect_invalid(path("tiny.vhd"), "tiny");
}

TEST_F(VhdImageTest, ParentLoopIsRefused) {
    // aaaa.vhd <- bbbb.vhd; then bbbb's locators are edited to name bbbb itself.
    std::string base = path("aaaa.vhd"), child = path("bbbb.vhd");
    VhdImage::create(base, opts(DiskType::dynamic, 1u << 20));
    VhdImage::create(child, opts(DiskType::differencing, 0, default_block_size, base));
    std::ifstream in(child, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    const char16_t from[] = u"aaaa", to[] = u"bbbb";
    std::size_t replaced = 0;
    for (std::size_t i = 1536; i + 8 <= bytes.size(); ++i) {
        if (std::memcmp(&bytes[i], from, 8) == 0) {
            std::memcpy(&bytes[i], to, 8);
            ++replaced;
        }
    }
    ASSERT_EQ(replaced, 2u); // the relative and the absolute locator
    std::ofstream(child, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    try {
        VhdImage::open(child, false);
        FAIL() << "a self-referencing chain opened";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("loops"), std::string::npos) << e.what();
    }
}

TEST_F(VhdImageTest, MissingParentIsNotFound) {
    std::string base = path("base.vhd"), child = path("child.vhd");
    VhdImage::create(base, opts(DiskType::dynamic, 1u << 20));
    VhdImage::create(child, opts(DiskType::differencing, 0, default_block_size, base));
    fs::remove(base);
    try {
        VhdImage::open(child, false);
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::not_found);
    }
}

TEST_F(VhdImageTest, DiscardFreesWholeBlocksOfDynamicDisks) {
    std::string p = path("d.vhd");
    VhdImage::create(p, opts(DiskType::dynamic, 8u << 20));
    auto img = VhdImage::open(p, true);
    auto d = pattern(2u << 20, 9);
    img->write(2u << 20, d.data(), d.size());
    img->discard(2u << 20, 2u << 20);
    std::vector<std::uint8_t> back(4096);
    img->read(2u << 20, back.data(), back.size());
    EXPECT_TRUE(std::all_of(back.begin(), back.end(), [](std::uint8_t b) { return b == 0; }));
}

} // namespace
} // namespace godwit::vhd
