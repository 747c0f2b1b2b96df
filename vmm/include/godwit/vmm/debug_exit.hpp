// Debug-exit port (QEMU's isa-debug-exit, iobase 0xf4, iosize 4): a guest writes v and the
// VM stops with result (v << 1) | 1, so a result of 1 means "exit code 0" and an even
// result can never be produced by the guest.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "godwit/vmm/io_bus.hpp"

namespace godwit::vmm {

class DebugExit final : public IoDevice {
  public:
    static constexpr std::uint16_t port = 0xf4;
    static constexpr std::uint16_t port_count = 4;
    using OnExit = std::function<void(std::uint32_t result)>;
    explicit DebugExit(OnExit on_exit = {}) : on_exit_(std::move(on_exit)) {}

    std::string_view name() const override { return "debug-exit"; }
    std::uint64_t read(std::uint64_t, unsigned) override { return 0; }
    void write(std::uint64_t offset, unsigned size, std::uint64_t value) override;

    // The VM result once the guest has written the port.
    std::optional<std::uint32_t> result() const { return result_; }

  private:
    OnExit on_exit_;
    std::optional<std::uint32_t> result_;
};

} // namespace godwit::vmm
