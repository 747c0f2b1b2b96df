#include "godwit/vmm/fw_cfg.hpp"

#include <string>

#include "test_support.hpp"

using namespace godwit::vmm;
using godwit::ErrorCode;

namespace {
// Reads an item the way a guest does: 16-bit selector write, byte-wide data reads.
std::vector<std::uint8_t> guest_read(IoBus& bus, std::uint16_t key, std::size_t n) {
    IoAccess select{0x510, 2, true, key};
    EXPECT_TRUE(bus.dispatch(select));
    std::vector<std::uint8_t> out;
    for (std::size_t i = 0; i < n; ++i) {
        IoAccess data{0x511, 1, false, 0};
        EXPECT_TRUE(bus.dispatch(data));
        out.push_back(static_cast<std::uint8_t>(data.data));
    }
    return out;
}

std::uint64_t le(const std::vector<std::uint8_t>& b) {
    std::uint64_t v = 0;
    for (std::size_t i = b.size(); i-- > 0;) {
        v = (v << 8) | b[i];
    }
    return v;
}

std::uint64_t be(const std::vector<std::uint8_t>& b, std::size_t at, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) {
        v = (v << 8) | b[at + i];
    }
    return v;
}
} // namespace

TEST(FwCfg, SignatureIdCpuCountAndRamSize) {
    IoBus bus("port");
    auto fw = std::make_shared<FwCfg>(3, 256ull << 20);
    bus.add(FwCfg::base_port, FwCfg::port_count, fw);
    auto sig = guest_read(bus, FwCfg::key_signature, 4);
    EXPECT_EQ(std::string(sig.begin(), sig.end()), "QEMU");
    EXPECT_EQ(le(guest_read(bus, FwCfg::key_id, 4)), 1u); // traditional interface, no DMA
    EXPECT_EQ(le(guest_read(bus, FwCfg::key_nb_cpus, 2)), 3u);
    EXPECT_EQ(le(guest_read(bus, FwCfg::key_ram_size, 8)), 256ull << 20);
    // Past the end of an item: zeros. Unknown selector: zeros.
    auto past = guest_read(bus, FwCfg::key_nb_cpus, 4);
    EXPECT_EQ(past[2], 0);
    EXPECT_EQ(past[3], 0);
    EXPECT_EQ(le(guest_read(bus, 0x7777, 4)), 0u);
}

TEST(FwCfg, ReselectingRestartsTheItem) {
    FwCfg fw(1, 1 << 20);
    fw.write(0, 2, FwCfg::key_signature);
    EXPECT_EQ(fw.read(1, 1), 'Q');
    EXPECT_EQ(fw.read(1, 1), 'E');
    fw.write(0, 2, FwCfg::key_signature);
    EXPECT_EQ(fw.read(1, 1), 'Q');
    fw.write(1, 1, 0x42); // data-port writes are ignored
    EXPECT_EQ(fw.read(1, 1), 'E');
}

TEST(FwCfg, FileDirectoryIsBigEndianAndSortedByName) {
    IoBus bus("port");
    auto fw = std::make_shared<FwCfg>(1, 1 << 20);
    bus.add(FwCfg::base_port, FwCfg::port_count, fw);
    std::uint16_t e820 = fw->add_file("etc/e820", std::vector<std::uint8_t>(40, 0xab));
    std::uint16_t name = fw->add_file("etc/godwit/vm-name", {'v', 'm', '1'});
    EXPECT_EQ(e820, FwCfg::key_file_first);
    EXPECT_EQ(name, FwCfg::key_file_first + 1);
    auto dir = guest_read(bus, FwCfg::key_file_dir, 4 + 2 * 64);
    ASSERT_EQ(be(dir, 0, 4), 2u);
    // Entry: be32 size, be16 select, be16 reserved, char name[56].
    EXPECT_EQ(be(dir, 4, 4), 40u);
    EXPECT_EQ(be(dir, 8, 2), e820);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(&dir[12])), "etc/e820");
    EXPECT_EQ(be(dir, 68, 4), 3u);
    EXPECT_EQ(be(dir, 72, 2), name);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(&dir[76])), "etc/godwit/vm-name");
    auto contents = guest_read(bus, name, 3);
    EXPECT_EQ(std::string(contents.begin(), contents.end()), "vm1");
    expect_error(ErrorCode::conflict, "already exists", [&] { fw->add_file("etc/e820", {}); });
    expect_error(ErrorCode::invalid_input, "1..55",
                 [&] { fw->add_file(std::string(56, 'x'), {}); });
}
