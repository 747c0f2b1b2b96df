// 16550A UART (National Semiconductor PC16550D data sheet) as COM1 at 0x3f8-0x3ff, IRQ 4.
// Transmission is instantaneous: THR bytes go straight to the sink (log file and console
// stream), so THRE/TEMT are always set. Received bytes queue in a 16-byte FIFO (1 byte
// with FIFOs off). The interrupt line is the IIR "pending" state gated by MCR.OUT2, as on
// PC boards.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "godwit/vmm/io_bus.hpp"

namespace godwit::vmm {

class Uart16550 final : public IoDevice {
  public:
    static constexpr std::uint16_t com1_base = 0x3f8;
    static constexpr std::uint16_t port_count = 8;
    static constexpr unsigned com1_irq = 4;
    static constexpr std::size_t fifo_size = 16;

    // Register offsets (data sheet table 2).
    enum Register : std::uint8_t {
        rbr_thr_dll = 0,
        ier_dlm = 1,
        iir_fcr = 2,
        lcr = 3,
        mcr = 4,
        lsr = 5,
        msr = 6,
        scr = 7
    };

    using Sink = std::function<void(std::uint8_t)>;
    using InterruptLine = std::function<void(bool asserted)>;
    explicit Uart16550(Sink transmit, InterruptLine interrupt = {});

    std::string_view name() const override { return "uart16550"; }
    std::uint64_t read(std::uint64_t offset, unsigned size) override;
    void write(std::uint64_t offset, unsigned size, std::uint64_t value) override;

    // Bytes typed on the console; returns how many fit in the receive FIFO (the rest are
    // dropped and set the overrun error, like a real line).
    std::size_t receive(std::span<const std::uint8_t> bytes);
    bool interrupt_asserted() const;
    std::uint16_t divisor() const;

    // Everything a migrated VM needs to continue where it left off.
    struct State {
        std::vector<std::uint8_t> rx_fifo;
        std::uint8_t dll, dlm, ier, fcr, lcr, mcr, scr, msr_deltas;
        bool overrun, thre_pending;
        bool operator==(const State&) const = default;
    };
    State save_state() const;
    void restore_state(const State& state);

  private:
    std::uint8_t read_register(unsigned reg);
    void write_register(unsigned reg, std::uint8_t value);
    void receive_byte(std::uint8_t byte);
    std::uint8_t interrupt_identification() const;
    std::uint8_t modem_status_lines() const;
    void update_interrupt();

    mutable std::mutex mutex_;
    Sink transmit_;
    InterruptLine interrupt_;
    std::deque<std::uint8_t> rx_;
    std::uint8_t dll_ = 0x0c, dlm_ = 0, ier_ = 0, fcr_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0;
    std::uint8_t msr_deltas_ = 0, previous_lines_ = 0;
    bool overrun_ = false;
    bool thre_pending_ = false; // THR-empty interrupt armed (cleared by IIR read or THR write)
    bool line_asserted_ = false;
};

} // namespace godwit::vmm
