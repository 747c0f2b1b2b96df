#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "godwit/error.hpp"
#include "godwit/vhd/block_file.hpp"

namespace godwit::vhd {
namespace {

class PosixBlockFile final : public BlockFile {
  public:
    PosixBlockFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
    ~PosixBlockFile() override { ::close(fd_); }

    void read_at(void* buffer, std::size_t length, std::uint64_t offset) const override {
        auto* p = static_cast<char*>(buffer);
        while (length > 0) {
            ssize_t n = ::pread(fd_, p, length, static_cast<off_t>(offset));
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                throw system_error("read " + path_, errno);
            }
            if (n == 0) {
                throw Error(ErrorCode::invalid_input,
                            path_ + ": unexpected end of file at offset " + std::to_string(offset) +
                                " (truncated file?)");
            }
            p += n;
            length -= static_cast<std::size_t>(n);
            offset += static_cast<std::uint64_t>(n);
        }
    }

    void write_at(const void* buffer, std::size_t length, std::uint64_t offset) override {
        const auto* p = static_cast<const char*>(buffer);
        while (length > 0) {
            ssize_t n = ::pwrite(fd_, p, length, static_cast<off_t>(offset));
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                throw system_error("write " + path_, errno);
            }
            p += n;
            length -= static_cast<std::size_t>(n);
            offset += static_cast<std::uint64_t>(n);
        }
    }

    void sync() override {
        if (::fdatasync(fd_) != 0)
            throw system_error("fdatasync " + path_, errno);
    }

    std::uint64_t size() const override {
        struct stat st {};
        if (::fstat(fd_, &st) != 0)
            throw system_error("stat " + path_, errno);
        return static_cast<std::uint64_t>(st.st_size);
    }

    void truncate(std::uint64_t size) override {
        if (::ftruncate(fd_, static_cast<off_t>(size)) != 0)
            throw system_error("truncate " + path_, errno);
    }

    bool punch_hole(std::uint64_t offset, std::uint64_t length) override {
        return ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           static_cast<off_t>(offset), static_cast<off_t>(length)) == 0;
    }

    const std::string& path() const override { return path_; }

  private:
    std::string path_;
    int fd_;
};

} // namespace

std::unique_ptr<BlockFile> open_posix_file(const std::string& path, OpenMode mode) {
    int flags = O_CLOEXEC;
    switch (mode) {
    case OpenMode::read_only:
        flags |= O_RDONLY;
        break;
    case OpenMode::read_write:
        flags |= O_RDWR;
        break;
    case OpenMode::create_new:
        flags |= O_RDWR | O_CREAT | O_EXCL;
        break;
    }
    int fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) {
        int err = errno;
        if (err == EEXIST)
            throw Error(ErrorCode::conflict, path + " already exists");
        throw system_error("open " + path, err);
    }
    return std::make_unique<PosixBlockFile>(path, fd);
}

namespace {

class PosixFileStore final : public FileStore {
  public:
    std::unique_ptr<BlockFile> open(const std::string& path, OpenMode mode) override {
        return open_posix_file(path, mode);
    }
    bool exists(const std::string& path) override {
        std::error_code ec;
        return std::filesystem::exists(path, ec);
    }
    std::string canonical(const std::string& path) override {
        std::error_code ec;
        std::string c = std::filesystem::weakly_canonical(path, ec).string();
        return c.empty() ? path : c;
    }
    std::string absolute(const std::string& path) override {
        return std::filesystem::absolute(path).string();
    }
    std::string relative(const std::string& target, const std::string& base_dir) override {
        return std::filesystem::relative(std::filesystem::absolute(target),
                                         std::filesystem::absolute(base_dir))
            .string();
    }
    void remove(const std::string& path) noexcept override {
        std::error_code ec;
        std::filesystem::remove(path, ec);
    }
};

} // namespace

FileStore& posix_file_store() {
    static PosixFileStore store;
    return store;
}

} // namespace godwit::vhd
