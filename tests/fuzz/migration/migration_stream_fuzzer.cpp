// libFuzzer target: arbitrary bytes as an incoming migration stream. The destination must
// refuse malformed input with an error and discard its partial VM — never crash, hang,
// allocate without bound or write outside the VM's memory (ASan/UBSan are on).
#include <cstring>

#include "godwit/error.hpp"
#include "godwit/migration/migration.hpp"
#include "synthetic_guest.hpp"

using namespace godwit::migration;

namespace {

class BufferChannel final : public Channel {
  public:
    BufferChannel(const std::uint8_t* d, std::size_t n) : data_(d), size_(n) {}
    void write_all(const void*, std::size_t n) override { bytes_written += n; } // ACKs go nowhere
    void read_exact(void* out, std::size_t n) override {
        if (n > size_ - pos_)
            throw godwit::Error(godwit::ErrorCode::protocol, "end of input");
        std::memcpy(out, data_ + pos_, n);
        pos_ += n;
        bytes_read += n;
    }
    void close() override {}
    std::string peer() const override { return "fuzz"; }

  private:
    const std::uint8_t* data_;
    std::size_t size_, pos_ = 0;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    BufferChannel ch(data, size);
    testing::SyntheticIncomingVm vm(256); // at most 1 MiB of guest memory
    (void)migrate_in(ch, vm);
    return 0;
}
