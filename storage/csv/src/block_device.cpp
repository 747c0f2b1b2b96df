#include "godwit/csv/block_device.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "godwit/error.hpp"

namespace godwit::csv {

AlignedBuffer::AlignedBuffer(std::size_t size) : size_(size) {
    if (size == 0) {
        return;
    }
    std::size_t rounded = (size + kDirectAlignment - 1) / kDirectAlignment * kDirectAlignment;
    void* p = std::aligned_alloc(kDirectAlignment, rounded);
    if (p == nullptr) {
        throw Error(ErrorCode::failed, "out of memory allocating an I/O buffer");
    }
    std::memset(p, 0, rounded);
    data_ = static_cast<std::byte*>(p);
}

AlignedBuffer::AlignedBuffer(AlignedBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& other) noexcept {
    if (this != &other) {
        std::free(data_);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

AlignedBuffer::~AlignedBuffer() {
    std::free(data_);
}

void BlockDevice::reopen() {
    throw Error(ErrorCode::unsupported, "this device cannot be reopened");
}

int PosixBlockDevice::open_flags() const noexcept {
    return (writable_ ? O_RDWR : O_RDONLY) | O_CLOEXEC | (direct_ ? O_DIRECT : 0);
}

PosixBlockDevice::PosixBlockDevice(const std::string& path, Access access, bool direct)
    : path_(path), writable_(access == Access::read_write), direct_(direct) {
    const int flags = open_flags();
    fd_ = ::open(path.c_str(), flags);
    if (fd_ < 0) {
        int err = errno;
        if (direct && err == EINVAL) {
            throw Error(ErrorCode::unsupported,
                        "cannot open " + path +
                            " with O_DIRECT (the file system does not support direct I/O)");
        }
        throw system_error("cannot open " + path, err);
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
        int err = errno;
        ::close(fd_);
        throw system_error("cannot stat " + path, err);
    }
    if (S_ISBLK(st.st_mode)) {
        std::uint64_t bytes = 0;
        if (::ioctl(fd_, BLKGETSIZE64, &bytes) != 0) {
            int err = errno;
            ::close(fd_);
            throw system_error("cannot read the size of block device " + path, err);
        }
        size_ = bytes;
    } else if (S_ISREG(st.st_mode)) {
        size_ = static_cast<std::uint64_t>(st.st_size);
    } else {
        ::close(fd_);
        throw Error(ErrorCode::invalid_input, path + " is neither a block device nor a file");
    }
}

PosixBlockDevice::~PosixBlockDevice() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

void PosixBlockDevice::reopen() {
    int fd = ::open(path_.c_str(), open_flags());
    if (fd < 0) {
        throw system_error("cannot reopen " + path_, errno);
    }
    struct stat st {};
    const bool same_size = ::fstat(fd, &st) == 0 &&
                           (S_ISBLK(st.st_mode) || static_cast<std::uint64_t>(st.st_size) == size_);
    if (!same_size || ::dup2(fd, fd_) < 0) {
        const int err = errno;
        ::close(fd);
        throw same_size ? system_error("cannot reopen " + path_, err)
                        : Error(ErrorCode::io, path_ + " is not the same device any more");
    }
    ::close(fd);
}

void PosixBlockDevice::sever() {
    // A directory descriptor: pread fails with EISDIR and pwrite with EBADF.
    int fd = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || ::dup2(fd, fd_) < 0) {
        throw system_error("cannot inject a path failure", errno);
    }
    ::close(fd);
}

void PosixBlockDevice::create_image(const std::string& path, std::uint64_t size) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        throw system_error("cannot create " + path, errno);
    }
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
        int err = errno;
        ::close(fd);
        throw system_error("cannot size " + path, err);
    }
    ::close(fd);
}

void PosixBlockDevice::check_range(std::uint64_t offset, std::size_t length) const {
    if (offset > size_ || length > size_ - offset) {
        throw Error(ErrorCode::invalid_input, "I/O beyond the end of " + path_);
    }
    if (direct_ && (offset % kDirectAlignment != 0 || length % kDirectAlignment != 0)) {
        throw Error(ErrorCode::internal, "unaligned direct I/O on " + path_);
    }
}

namespace {
bool aligned(const void* p) {
    return reinterpret_cast<std::uintptr_t>(p) % kDirectAlignment == 0;
}

// This thread's bounce buffer for O_DIRECT I/O from unaligned memory: kept, not allocated
// and zeroed again for every request (redirected writes arrive in protobuf strings).
std::byte* bounce_buffer(std::size_t size) {
    thread_local AlignedBuffer buffer;
    if (buffer.size() < size) {
        buffer = AlignedBuffer(size);
    }
    return buffer.data();
}
} // namespace

void PosixBlockDevice::read(std::uint64_t offset, std::span<std::byte> out) {
    check_range(offset, out.size());
    std::byte* target = out.data();
    if (direct_ && !aligned(target)) {
        target = bounce_buffer(out.size());
    }
    std::size_t done = 0;
    while (done < out.size()) {
        ssize_t n =
            ::pread(fd_, target + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw system_error("read from " + path_ + " failed", errno);
        }
        if (n == 0) {
            throw Error(ErrorCode::io, "unexpected end of " + path_);
        }
        done += static_cast<std::size_t>(n);
    }
    if (target != out.data()) {
        std::memcpy(out.data(), target, out.size());
    }
}

void PosixBlockDevice::write(std::uint64_t offset, std::span<const std::byte> in) {
    check_range(offset, in.size());
    const std::byte* source = in.data();
    if (direct_ && !aligned(source)) {
        std::byte* bounce = bounce_buffer(in.size());
        std::memcpy(bounce, in.data(), in.size());
        source = bounce;
    }
    std::size_t done = 0;
    while (done < in.size()) {
        ssize_t n =
            ::pwrite(fd_, source + done, in.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw system_error("write to " + path_ + " failed", errno);
        }
        done += static_cast<std::size_t>(n);
    }
}

void PosixBlockDevice::flush() {
    if (::fdatasync(fd_) != 0) {
        throw system_error("flush of " + path_ + " failed", errno);
    }
}

void MemoryBlockDevice::check_range(std::uint64_t offset, std::size_t length) const {
    if (offset > bytes_.size() || length > bytes_.size() - offset) {
        throw Error(ErrorCode::invalid_input, "I/O beyond the end of the memory device");
    }
}

void MemoryBlockDevice::read(std::uint64_t offset, std::span<std::byte> out) {
    check_range(offset, out.size());
    if (!out.empty()) {
        std::memcpy(out.data(), bytes_.data() + offset, out.size());
    }
}

void MemoryBlockDevice::write(std::uint64_t offset, std::span<const std::byte> in) {
    check_range(offset, in.size());
    if (!in.empty()) {
        std::memcpy(bytes_.data() + offset, in.data(), in.size());
    }
}

} // namespace godwit::csv
