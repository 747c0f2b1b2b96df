#include "godwit/vmm/uart16550.hpp"

namespace godwit::vmm {

namespace {
constexpr std::uint8_t lcr_dlab = 0x80;
constexpr std::uint8_t ier_rx_data = 0x01, ier_thr_empty = 0x02, ier_line_status = 0x04,
                       ier_modem_status = 0x08;
constexpr std::uint8_t fcr_enable = 0x01, fcr_clear_rx = 0x02;
constexpr std::uint8_t mcr_dtr = 0x01, mcr_rts = 0x02, mcr_out1 = 0x04, mcr_out2 = 0x08,
                       mcr_loop = 0x10;
constexpr std::uint8_t lsr_data_ready = 0x01, lsr_overrun = 0x02, lsr_thr_empty = 0x20,
                       lsr_transmitter_empty = 0x40;
constexpr std::uint8_t msr_cts = 0x10, msr_dsr = 0x20, msr_ri = 0x40, msr_dcd = 0x80;
// IIR values (data sheet table 4), highest priority first.
constexpr std::uint8_t iir_none = 0x01, iir_line_status = 0x06, iir_rx_data = 0x04,
                       iir_thr_empty = 0x02, iir_modem_status = 0x00, iir_fifos_enabled = 0xc0;
} // namespace

Uart16550::Uart16550(Sink transmit, InterruptLine interrupt)
    : transmit_(std::move(transmit)), interrupt_(std::move(interrupt)) {
    previous_lines_ = modem_status_lines();
}

std::uint64_t Uart16550::read(std::uint64_t offset, unsigned size) {
    std::scoped_lock lock(mutex_);
    std::uint64_t value = 0;
    // Wider accesses read consecutive registers, lowest address in the low byte.
    for (unsigned i = 0; i < size; ++i) {
        std::uint64_t reg = offset + i;
        std::uint8_t byte = reg < port_count ? read_register(static_cast<unsigned>(reg)) : 0xff;
        value |= std::uint64_t{byte} << (8 * i);
    }
    update_interrupt();
    return value;
}

void Uart16550::write(std::uint64_t offset, unsigned size, std::uint64_t value) {
    std::scoped_lock lock(mutex_);
    for (unsigned i = 0; i < size; ++i) {
        if (offset + i < port_count) {
            write_register(static_cast<unsigned>(offset + i),
                           static_cast<std::uint8_t>(value >> (8 * i)));
        }
    }
    update_interrupt();
}

std::size_t Uart16550::receive(std::span<const std::uint8_t> bytes) {
    std::scoped_lock lock(mutex_);
    std::size_t accepted = 0;
    for (std::uint8_t b : bytes) {
        std::size_t before = rx_.size();
        receive_byte(b);
        accepted += rx_.size() > before ? 1 : 0;
    }
    update_interrupt();
    return accepted;
}

bool Uart16550::interrupt_asserted() const {
    std::scoped_lock lock(mutex_);
    return line_asserted_;
}

std::uint16_t Uart16550::divisor() const {
    std::scoped_lock lock(mutex_);
    return static_cast<std::uint16_t>(dll_ | (dlm_ << 8));
}

Uart16550::State Uart16550::save_state() const {
    std::scoped_lock lock(mutex_);
    return {{rx_.begin(), rx_.end()},
            dll_,
            dlm_,
            ier_,
            fcr_,
            lcr_,
            mcr_,
            scr_,
            msr_deltas_,
            overrun_,
            thre_pending_};
}

void Uart16550::restore_state(const State& s) {
    std::scoped_lock lock(mutex_);
    rx_.assign(s.rx_fifo.begin(), s.rx_fifo.end());
    dll_ = s.dll;
    dlm_ = s.dlm;
    ier_ = s.ier & 0x0f;
    fcr_ = s.fcr & 0xc9;
    lcr_ = s.lcr;
    mcr_ = s.mcr & 0x1f;
    scr_ = s.scr;
    msr_deltas_ = s.msr_deltas & 0x0f;
    overrun_ = s.overrun;
    thre_pending_ = s.thre_pending;
    previous_lines_ = modem_status_lines();
    while (rx_.size() > ((fcr_ & fcr_enable) ? fifo_size : 1)) {
        rx_.pop_back(); // a hostile or corrupt state cannot overfill the FIFO
    }
    update_interrupt();
}

void Uart16550::receive_byte(std::uint8_t byte) {
    std::size_t capacity = (fcr_ & fcr_enable) ? fifo_size : 1;
    if (rx_.size() >= capacity) {
        overrun_ = true;
        return;
    }
    rx_.push_back(byte);
}

std::uint8_t Uart16550::modem_status_lines() const {
    if (mcr_ & mcr_loop) {
        // Loopback (data sheet 8.6): the modem outputs feed the inputs.
        std::uint8_t lines = 0;
        lines |= (mcr_ & mcr_rts) ? msr_cts : 0;
        lines |= (mcr_ & mcr_dtr) ? msr_dsr : 0;
        lines |= (mcr_ & mcr_out1) ? msr_ri : 0;
        lines |= (mcr_ & mcr_out2) ? msr_dcd : 0;
        return lines;
    }
    return msr_cts | msr_dsr | msr_dcd; // a connected terminal
}

std::uint8_t Uart16550::interrupt_identification() const {
    std::uint8_t fifo_bits = (fcr_ & fcr_enable) ? iir_fifos_enabled : 0;
    if ((ier_ & ier_line_status) && overrun_) {
        return fifo_bits | iir_line_status;
    }
    if ((ier_ & ier_rx_data) && !rx_.empty()) {
        return fifo_bits | iir_rx_data;
    }
    if ((ier_ & ier_thr_empty) && thre_pending_) {
        return fifo_bits | iir_thr_empty;
    }
    if ((ier_ & ier_modem_status) && (msr_deltas_ & 0x0f)) {
        return fifo_bits | iir_modem_status;
    }
    return fifo_bits | iir_none;
}

std::uint8_t Uart16550::read_register(unsigned reg) {
    bool dlab = lcr_ & lcr_dlab;
    switch (reg) {
    case rbr_thr_dll: {
        if (dlab) {
            return dll_;
        }
        if (rx_.empty()) {
            return 0;
        }
        std::uint8_t byte = rx_.front();
        rx_.pop_front();
        return byte;
    }
    case ier_dlm:
        return dlab ? dlm_ : ier_;
    case iir_fcr: {
        std::uint8_t iir = interrupt_identification();
        if ((iir & 0x0f) == iir_thr_empty) {
            thre_pending_ = false; // reading IIR as the source clears it (data sheet table 4)
        }
        return iir;
    }
    case lcr:
        return lcr_;
    case mcr:
        return mcr_;
    case lsr: {
        std::uint8_t value = lsr_thr_empty | lsr_transmitter_empty;
        value |= rx_.empty() ? 0 : lsr_data_ready;
        value |= overrun_ ? lsr_overrun : 0;
        overrun_ = false; // error bits clear on read
        return value;
    }
    case msr: {
        std::uint8_t value = static_cast<std::uint8_t>(modem_status_lines() | msr_deltas_);
        msr_deltas_ = 0;
        return value;
    }
    default:
        return scr_;
    }
}

void Uart16550::write_register(unsigned reg, std::uint8_t value) {
    bool dlab = lcr_ & lcr_dlab;
    switch (reg) {
    case rbr_thr_dll:
        if (dlab) {
            dll_ = value;
        } else if (mcr_ & mcr_loop) {
            receive_byte(value); // loopback: the transmitter feeds the receiver
            thre_pending_ = true;
        } else {
            if (transmit_) {
                transmit_(value);
            }
            thre_pending_ = true; // sent at once, so THR is empty again
        }
        break;
    case ier_dlm:
        if (dlab) {
            dlm_ = value;
        } else {
            bool was_enabled = ier_ & ier_thr_empty;
            ier_ = value & 0x0f;
            if (!was_enabled && (ier_ & ier_thr_empty)) {
                thre_pending_ = true; // enabling ETBEI with THR empty raises it
            }
        }
        break;
    case iir_fcr:
        if ((value & fcr_enable) != (fcr_ & fcr_enable) || (value & fcr_clear_rx)) {
            rx_.clear(); // changing the FIFO mode or clearing it empties the receiver
        }
        fcr_ = value & 0xc9; // enable, DMA mode, trigger level; clear bits self-reset
        break;
    case lcr:
        lcr_ = value;
        break;
    case mcr: {
        mcr_ = value & 0x1f;
        std::uint8_t lines = modem_status_lines();
        std::uint8_t changed = lines ^ previous_lines_;
        // Delta bits (MSR 3:0): CTS, DSR, trailing edge of RI, DCD.
        msr_deltas_ |= (changed & msr_cts) ? 0x01 : 0;
        msr_deltas_ |= (changed & msr_dsr) ? 0x02 : 0;
        msr_deltas_ |= ((previous_lines_ & msr_ri) && !(lines & msr_ri)) ? 0x04 : 0;
        msr_deltas_ |= (changed & msr_dcd) ? 0x08 : 0;
        previous_lines_ = lines;
        break;
    }
    case lsr:
    case msr:
        break; // read-only (factory test use only)
    default:
        scr_ = value;
        break;
    }
}

void Uart16550::update_interrupt() {
    bool pending = (interrupt_identification() & iir_none) == 0;
    // On the PC, OUT2 gates the UART's interrupt onto the ISA IRQ line; in loopback the
    // line is disconnected.
    bool asserted = pending && (mcr_ & mcr_out2) && !(mcr_ & mcr_loop);
    if (asserted != line_asserted_) {
        line_asserted_ = asserted;
        if (interrupt_) {
            interrupt_(asserted);
        }
    }
}

} // namespace godwit::vmm
