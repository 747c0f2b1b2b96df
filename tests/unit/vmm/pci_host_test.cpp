#include "godwit/vmm/pci_host.hpp"

#include "test_support.hpp"

using namespace godwit::vmm;

namespace {
std::uint32_t config_address(unsigned bus, unsigned dev, unsigned fn, unsigned reg) {
    return 0x8000'0000u | (bus << 16) | (dev << 11) | (fn << 8) | (reg & 0xfc);
}
struct PciFixture : ::testing::Test {
    IoBus bus{"port"};
    PciFixture() {
        bus.add(PciHostBridge::base_port, PciHostBridge::port_count,
                std::make_shared<PciHostBridge>());
    }
    std::uint64_t cfg_read(std::uint32_t address, unsigned byte, std::uint8_t size) {
        IoAccess a{0xcf8, 4, true, address};
        bus.dispatch(a);
        IoAccess d{0xcfc + byte, size, false, 0};
        bus.dispatch(d);
        return d.data;
    }
};
} // namespace

TEST_F(PciFixture, HostBridgeAt000) {
    EXPECT_EQ(cfg_read(config_address(0, 0, 0, 0), 0, 4), 0x1237'8086u);
    EXPECT_EQ(cfg_read(config_address(0, 0, 0, 0), 2, 2), 0x1237u);
    EXPECT_EQ(cfg_read(config_address(0, 0, 0, 8), 0, 4) >> 8, 0x060000u); // class: host bridge
    EXPECT_EQ(cfg_read(config_address(0, 0, 0, 0x0c), 2, 1), 0u);          // header type 0
}

TEST_F(PciFixture, EmptySlotsFunctionsAndBusesReadAllOnes) {
    for (unsigned dev = 1; dev < 32; ++dev) {
        EXPECT_EQ(cfg_read(config_address(0, dev, 0, 0), 0, 2), 0xffffu) << "device " << dev;
    }
    EXPECT_EQ(cfg_read(config_address(0, 0, 1, 0), 0, 4), 0xffff'ffffu);
    EXPECT_EQ(cfg_read(config_address(1, 0, 0, 0), 0, 4), 0xffff'ffffu);
    EXPECT_EQ(cfg_read(config_address(0, 0, 0, 0) & 0x7fff'ffff, 0, 4), 0xffff'ffffu); // disabled
}

TEST_F(PciFixture, AddressLatchReadsBackAndOnlyCommandBitsAreWritable) {
    IoAccess a{0xcf8, 4, true, config_address(0, 3, 0, 0x10) | 0x3};
    bus.dispatch(a);
    IoAccess r{0xcf8, 4, false, 0};
    bus.dispatch(r);
    EXPECT_EQ(r.data, config_address(0, 3, 0, 0x10)); // low two bits are not stored
    IoAccess select{0xcf8, 4, true, config_address(0, 0, 0, 0)};
    bus.dispatch(select);
    IoAccess vendor_write{0xcfc, 2, true, 0x1234};
    bus.dispatch(vendor_write);
    IoAccess select_cmd{0xcf8, 4, true, config_address(0, 0, 0, 4)};
    bus.dispatch(select_cmd);
    IoAccess cmd{0xcfc, 2, true, 0xffff};
    bus.dispatch(cmd);
    EXPECT_EQ(cfg_read(config_address(0, 0, 0, 4), 0, 2), 0x0006u);
    IoAccess clear{0xcfc, 2, true, 0x0000};
    bus.dispatch(clear);
    EXPECT_EQ(cfg_read(config_address(0, 0, 0, 4), 0, 2), 0x0000u);
    EXPECT_EQ(cfg_read(config_address(0, 0, 0, 0), 0, 2), 0x8086u); // vendor ID is read-only
    IoAccess byte_at_cf9{0xcf9, 1, false, 0};
    bus.dispatch(byte_at_cf9);
    EXPECT_EQ(byte_at_cf9.data, 0xffu);
}
