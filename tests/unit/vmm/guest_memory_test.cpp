#include "godwit/vmm/guest_memory.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <vector>

#include <array>

#include "test_support.hpp"

using namespace godwit::vmm;
using godwit::ErrorCode;

TEST(GuestMemory, SmallVmIsOneRangeFromZero) {
    GuestMemory m(16 << 20);
    ASSERT_EQ(m.ranges().size(), 1u);
    EXPECT_EQ(m.ranges()[0].guest_base, 0u);
    EXPECT_EQ(m.ranges()[0].size, 16u << 20);
    EXPECT_TRUE(m.contains(0, 16 << 20));
    EXPECT_FALSE(m.contains(0, (16 << 20) + 1));
    EXPECT_FALSE(m.contains((16 << 20) - 4, 8));
}

TEST(GuestMemory, LargeVmIsSplitAroundThePciHole) {
    const std::uint64_t size = 4ull << 30;
    GuestMemory m(size);
    ASSERT_EQ(m.ranges().size(), 2u);
    EXPECT_EQ(m.ranges()[0].end(), GuestMemory::pci_hole_start);
    EXPECT_EQ(m.ranges()[1].guest_base, GuestMemory::high_ram_start);
    EXPECT_EQ(m.ranges()[1].size, size - GuestMemory::pci_hole_start);
    EXPECT_FALSE(m.contains(GuestMemory::pci_hole_start, 1));
    // Writes on both sides of the hole land in distinct host memory.
    m.write_value<std::uint32_t>(GuestMemory::pci_hole_start - 4, 0x11223344);
    m.write_value<std::uint32_t>(GuestMemory::high_ram_start, 0x55667788);
    EXPECT_EQ(m.read_value<std::uint32_t>(GuestMemory::pci_hole_start - 4), 0x11223344u);
    EXPECT_EQ(m.read_value<std::uint32_t>(GuestMemory::high_ram_start), 0x55667788u);
    expect_error(ErrorCode::invalid_input, "outside guest RAM",
                 [&] { (void)m.read_value<std::uint32_t>(GuestMemory::pci_hole_start); });
    expect_error(ErrorCode::invalid_input, "outside guest RAM",
                 [&] { (void)m.read_value<std::uint64_t>(GuestMemory::pci_hole_start - 4); });
}

TEST(GuestMemory, ReadWriteFillAndBounds) {
    GuestMemory m(1 << 20);
    std::array<std::byte, 4> data{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    m.write(0x1000, data);
    std::array<std::byte, 4> back{};
    m.read(0x1000, back);
    EXPECT_EQ(back, data);
    m.fill(0x1001, 2, std::byte{0xee});
    EXPECT_EQ(m.read_value<std::uint32_t>(0x1000), 0x04eeee01u);
    expect_error(ErrorCode::invalid_input, "0xffffe+0x4", [&] { m.write(0xffffe, data); });
    expect_error(ErrorCode::invalid_input, "outside guest RAM",
                 [&] { m.read(~std::uint64_t{0} - 1, back); });
}

TEST(GuestMemory, RejectsSizesThatAreNotWholePages) {
    expect_error(ErrorCode::invalid_input, "multiple of 4 KiB", [] { GuestMemory m(0); });
    expect_error(ErrorCode::invalid_input, "multiple of 4 KiB", [] { GuestMemory m(4097); });
}

TEST(GuestMemory, AdoptMovesPagesWithoutCopying) {
    constexpr std::uint64_t size = 64 * page_size;
    GuestMemory m(size);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(p, MAP_FAILED);
    auto* bytes = static_cast<std::uint8_t*>(p);
    for (std::uint64_t i = 0; i < size; i += page_size)
        bytes[i] = static_cast<std::uint8_t>(i / page_size + 1);
    m.adopt(0, p, size);
    for (std::uint64_t i = 0; i < size; i += page_size)
        EXPECT_EQ(m.read_value<std::uint8_t>(i), i / page_size + 1) << i;
    // Moved, not copied: the source range is no longer mapped.
    unsigned char residency = 0;
    EXPECT_EQ(::mincore(p, page_size, &residency), -1);
    EXPECT_EQ(errno, ENOMEM);
    ::munmap(p, size);
    // A misaligned source is copied instead; outside RAM is refused.
    std::vector<std::uint8_t> unaligned(page_size + 1, 0x5A);
    m.adopt(page_size, unaligned.data() + 1, page_size);
    EXPECT_EQ(m.read_value<std::uint8_t>(page_size), 0x5A);
    EXPECT_EQ(unaligned[1], 0x5A); // still there
    EXPECT_THROW(m.adopt(size, unaligned.data(), page_size), godwit::Error);
}
