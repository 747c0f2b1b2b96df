// The LUN as the volume sees it: a byte-addressed device with pread/pwrite/flush/size.
//
// PosixBlockDevice opens a file or a block device, with O_DIRECT when asked (every node
// of a cluster shared volume must bypass its page cache, or it would read stale blocks
// another node has rewritten). MemoryBlockDevice backs unit tests and the fuzzer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace godwit::csv {

// Alignment of every O_DIRECT buffer, offset and length (the largest logical sector size).
inline constexpr std::size_t kDirectAlignment = 4096;

// A zero-filled heap buffer aligned for O_DIRECT.
class AlignedBuffer {
  public:
    AlignedBuffer() = default;
    explicit AlignedBuffer(std::size_t size);
    AlignedBuffer(AlignedBuffer&& other) noexcept;
    AlignedBuffer& operator=(AlignedBuffer&& other) noexcept;
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    ~AlignedBuffer();

    std::byte* data() noexcept { return data_; }
    const std::byte* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    std::span<std::byte> span() noexcept { return {data_, size_}; }
    std::span<const std::byte> span() const noexcept { return {data_, size_}; }

  private:
    std::byte* data_ = nullptr;
    std::size_t size_ = 0;
};

class BlockDevice {
  public:
    virtual ~BlockDevice() = default;
    // Reads/writes exactly out.size() bytes at `offset`; throws godwit::Error(io) on failure
    // and Error(invalid_input) when the range is beyond the device.
    virtual void read(std::uint64_t offset, std::span<std::byte> out) = 0;
    virtual void write(std::uint64_t offset, std::span<const std::byte> in) = 0;
    // Makes every completed write durable (fdatasync / cache flush).
    virtual void flush() = 0;
    virtual std::uint64_t size() const = 0;
    // Opens the path to the device again after I/O on it failed (a node probing whether its
    // lost LUN path is back). Throws when it is still gone; devices without a path throw
    // Error(unsupported).
    virtual void reopen();
};

class PosixBlockDevice final : public BlockDevice {
  public:
    enum class Access { read_only, read_write };
    // Opens `path`. With `direct`, I/O bypasses the page cache (O_DIRECT); offsets and
    // lengths must then be multiples of kDirectAlignment (buffers need not be: unaligned
    // ones go through an aligned bounce buffer).
    PosixBlockDevice(const std::string& path, Access access, bool direct);
    ~PosixBlockDevice() override;
    PosixBlockDevice(const PosixBlockDevice&) = delete;
    PosixBlockDevice& operator=(const PosixBlockDevice&) = delete;

    void read(std::uint64_t offset, std::span<std::byte> out) override;
    void write(std::uint64_t offset, std::span<const std::byte> in) override;
    void flush() override;
    std::uint64_t size() const override { return size_; }
    // Opens `path` again with the same flags and puts the new descriptor in place of the old
    // one (dup2: concurrent I/O sees one or the other, never a closed descriptor).
    void reopen() override;
    // Fault injection for tests of redirected mode: swaps the descriptor for one on which
    // every read and write really fails (as I/O on a lost SAN path does), until reopen().
    void sever();
    bool direct() const noexcept { return direct_; }
    const std::string& path() const noexcept { return path_; }

    // Creates (or truncates) a regular file of `size` bytes to be used as a LUN image.
    static void create_image(const std::string& path, std::uint64_t size);

  private:
    void check_range(std::uint64_t offset, std::size_t length) const;
    int open_flags() const noexcept;
    std::string path_;
    bool writable_ = false;
    int fd_ = -1;
    bool direct_ = false;
    std::uint64_t size_ = 0;
};

class MemoryBlockDevice final : public BlockDevice {
  public:
    explicit MemoryBlockDevice(std::uint64_t size) : bytes_(size) {}
    explicit MemoryBlockDevice(std::vector<std::byte> bytes) : bytes_(std::move(bytes)) {}

    void read(std::uint64_t offset, std::span<std::byte> out) override;
    void write(std::uint64_t offset, std::span<const std::byte> in) override;
    void flush() override { ++flushes_; }
    std::uint64_t size() const override { return bytes_.size(); }

    std::vector<std::byte>& bytes() noexcept { return bytes_; }
    std::uint64_t flushes() const noexcept { return flushes_; }

  private:
    void check_range(std::uint64_t offset, std::size_t length) const;
    std::vector<std::byte> bytes_;
    std::uint64_t flushes_ = 0;
};

} // namespace godwit::csv
