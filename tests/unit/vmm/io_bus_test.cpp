#include "godwit/vmm/io_bus.hpp"

#include "godwit/vmm/debug_exit.hpp"
#include "test_support.hpp"

using namespace godwit::vmm;
using godwit::ErrorCode;

namespace {
// Records accesses; reads return offset * 0x11 plus size.
class RecordingDevice final : public IoDevice {
  public:
    std::string_view name() const override { return "recorder"; }
    std::uint64_t read(std::uint64_t offset, unsigned size) override {
        last_offset = offset;
        return offset * 0x11 + size;
    }
    void write(std::uint64_t offset, unsigned size, std::uint64_t value) override {
        last_offset = offset;
        last_size = size;
        last_value = value;
    }
    std::uint64_t last_offset = 0, last_value = 0;
    unsigned last_size = 0;
};
} // namespace

TEST(IoBus, DispatchesRelativeOffsetsAndMasksToTheAccessSize) {
    IoBus bus("port");
    auto dev = std::make_shared<RecordingDevice>();
    bus.add(0x100, 8, dev);
    IoAccess read{0x103, 2, false, 0};
    EXPECT_TRUE(bus.dispatch(read));
    EXPECT_EQ(read.data, 3u * 0x11 + 2);
    IoAccess write{0x104, 1, true, 0x1ff};
    EXPECT_TRUE(bus.dispatch(write));
    EXPECT_EQ(dev->last_offset, 4u);
    EXPECT_EQ(dev->last_value, 0xffu); // masked to one byte
    EXPECT_EQ(bus.find(0x107), dev.get());
    EXPECT_EQ(bus.find(0x108), nullptr);
}

TEST(IoBus, UnclaimedReadsAreAllOnesAndWritesAreDropped) {
    IoBus bus("port");
    bus.add(0x100, 8, std::make_shared<RecordingDevice>());
    for (std::uint8_t size : {1, 2, 4, 8}) {
        IoAccess a{0x80, size, false, 0};
        EXPECT_FALSE(bus.dispatch(a));
        EXPECT_EQ(a.data, all_ones(size));
    }
    IoAccess straddling{0x107, 2, false, 0};
    EXPECT_FALSE(bus.dispatch(straddling));
    EXPECT_EQ(straddling.data, 0xffffu);
    IoAccess w{0x80, 4, true, 1};
    EXPECT_FALSE(bus.dispatch(w));
}

TEST(IoBus, RejectsOverlapsAndBadSizes) {
    IoBus bus("mmio");
    bus.add(0x1000, 0x100, std::make_shared<RecordingDevice>());
    expect_error(ErrorCode::conflict, "overlaps",
                 [&] { bus.add(0x10ff, 2, std::make_shared<RecordingDevice>()); });
    bus.add(0x1100, 0x10, std::make_shared<RecordingDevice>()); // adjacent is fine
    IoAccess a{0x1000, 3, false, 0};
    expect_error(ErrorCode::invalid_input, "3 bytes", [&] { bus.dispatch(a); });
}

TEST(DebugExit, ResultIsValueShiftedLeftOrOne) {
    std::uint32_t seen = 0;
    IoBus bus("port");
    auto exit = std::make_shared<DebugExit>([&](std::uint32_t r) { seen = r; });
    bus.add(DebugExit::port, DebugExit::port_count, exit);
    IoAccess a{0xf4, 4, true, 0x2a};
    bus.dispatch(a);
    EXPECT_EQ(exit->result(), (0x2au << 1) | 1);
    EXPECT_EQ(seen, (0x2au << 1) | 1);
    IoAccess again{0xf4, 1, true, 0};
    bus.dispatch(again); // the first exit wins
    EXPECT_EQ(exit->result(), 0x55u);
}

TEST(DebugExit, ZeroMeansResultOne) {
    DebugExit exit;
    exit.write(0, 1, 0);
    EXPECT_EQ(exit.result(), 1u);
}
