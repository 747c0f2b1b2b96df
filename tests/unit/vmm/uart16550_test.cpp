#include "godwit/vmm/uart16550.hpp"

#include <string>
#include <vector>

#include "test_support.hpp"

using namespace godwit::vmm;

namespace {
struct UartFixture : ::testing::Test {
    std::string sent;
    std::vector<bool> line_changes;
    Uart16550 uart{[this](std::uint8_t b) { sent.push_back(static_cast<char>(b)); },
                   [this](bool a) { line_changes.push_back(a); }};
    std::uint8_t in(unsigned reg) { return static_cast<std::uint8_t>(uart.read(reg, 1)); }
    void out(unsigned reg, std::uint8_t v) { uart.write(reg, 1, v); }
    void rx(const std::string& s) {
        uart.receive({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
    }
};
} // namespace

TEST_F(UartFixture, DlabSelectsTheDivisorLatch) {
    out(Uart16550::lcr, 0x80);
    out(0, 0x01);
    out(1, 0x00);
    EXPECT_EQ(uart.divisor(), 1);
    out(0, 0x0c);
    out(1, 0x02);
    EXPECT_EQ(uart.divisor(), 0x020c);
    EXPECT_EQ(in(0), 0x0c);
    EXPECT_EQ(in(1), 0x02);
    out(Uart16550::lcr, 0x03);
    EXPECT_EQ(in(1), 0x00);    // IER again, untouched by the divisor writes
    EXPECT_TRUE(sent.empty()); // DLL writes are not transmitted
}

TEST_F(UartFixture, TransmitGoesToTheSinkAndThrIsAlwaysEmpty) {
    out(Uart16550::lcr, 0x03);
    for (char c : std::string("hi\n")) {
        EXPECT_EQ(in(Uart16550::lsr)&0x60, 0x60); // THRE and TEMT
        out(0, static_cast<std::uint8_t>(c));
    }
    EXPECT_EQ(sent, "hi\n");
    out(Uart16550::scr, 0x5a);
    EXPECT_EQ(in(Uart16550::scr), 0x5a);
}

TEST_F(UartFixture, ReceiveFifoDataReadyAndOverrun) {
    out(Uart16550::iir_fcr, 0x07); // FIFOs on
    EXPECT_EQ(in(Uart16550::iir_fcr)&0xc0, 0xc0);
    EXPECT_EQ(in(Uart16550::lsr)&0x01, 0);
    rx("abc");
    EXPECT_EQ(in(Uart16550::lsr)&0x01, 1);
    EXPECT_EQ(in(0), 'a');
    EXPECT_EQ(in(0), 'b');
    EXPECT_EQ(in(0), 'c');
    EXPECT_EQ(in(Uart16550::lsr)&0x01, 0);
    EXPECT_EQ(uart.receive(std::vector<std::uint8_t>(20, 'x')), Uart16550::fifo_size);
    EXPECT_EQ(in(Uart16550::lsr)&0x03, 0x03); // data ready + overrun
    EXPECT_EQ(in(Uart16550::lsr)&0x02, 0);    // overrun clears on read
    out(Uart16550::iir_fcr, 0x03);            // clear the receive FIFO
    EXPECT_EQ(in(Uart16550::lsr)&0x01, 0);
    out(Uart16550::iir_fcr, 0x00); // FIFOs off: a one-byte holding register
    EXPECT_EQ(uart.receive(std::vector<std::uint8_t>{'1', '2'}), 1u);
    EXPECT_EQ(in(0), '1');
}

TEST_F(UartFixture, InterruptIdentificationPriorityAndOut2Gating) {
    EXPECT_EQ(in(Uart16550::iir_fcr), 0x01); // nothing pending
    out(Uart16550::ier_dlm, 0x03);           // RX data + THR empty
    EXPECT_FALSE(uart.interrupt_asserted()); // OUT2 clear: line not connected
    out(Uart16550::mcr, 0x08);               // OUT2
    EXPECT_TRUE(uart.interrupt_asserted());
    rx("z");
    EXPECT_EQ(in(Uart16550::iir_fcr), 0x04); // RX data outranks THR empty
    EXPECT_EQ(in(0), 'z');
    EXPECT_EQ(in(Uart16550::iir_fcr), 0x02); // now THR empty; reading IIR clears it
    EXPECT_EQ(in(Uart16550::iir_fcr), 0x01);
    EXPECT_FALSE(uart.interrupt_asserted());
    out(0, 'q'); // transmitting re-arms THR empty
    EXPECT_TRUE(uart.interrupt_asserted());
    EXPECT_EQ(in(Uart16550::iir_fcr), 0x02);
    ASSERT_GE(line_changes.size(), 3u);
    EXPECT_TRUE(line_changes[0]);
    EXPECT_FALSE(line_changes[1]);
}

TEST_F(UartFixture, LoopbackFeedsTransmitterToReceiverAndModemLines) {
    out(Uart16550::mcr, 0x10 | 0x01 | 0x02); // loop, DTR, RTS
    out(0, 'L');
    EXPECT_TRUE(sent.empty());
    EXPECT_EQ(in(Uart16550::lsr)&0x01, 1);
    EXPECT_EQ(in(0), 'L');
    std::uint8_t msr = in(Uart16550::msr);
    EXPECT_EQ(msr & 0xf0, 0x30); // CTS <- RTS, DSR <- DTR, RI/DCD off
    EXPECT_EQ(msr & 0x0f, 0x08); // only DCD changed (the line was connected: CTS, DSR, DCD)
    EXPECT_EQ(in(Uart16550::msr)&0x0f, 0); // deltas clear on read
    out(Uart16550::mcr, 0x10 | 0x0c);      // OUT1, OUT2 only
    msr = in(Uart16550::msr);
    EXPECT_EQ(msr & 0xf0, 0xc0); // RI <- OUT1, DCD <- OUT2
    EXPECT_EQ(msr & 0x0f, 0x0b); // CTS, DSR and DCD changed; RI rose (only its fall counts)
    out(Uart16550::mcr, 0x00);   // out of loopback: a connected line (CTS, DSR, DCD)
    EXPECT_EQ(in(Uart16550::msr)&0xf0, 0xb0);
}
