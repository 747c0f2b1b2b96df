// libFuzzer target for what a node (or the CLI) can ask of a coordinator: the coordinator
// passes the fields of every request — paths, sizes, offsets and lengths of any 64-bit
// value, handles, snapshot names — to the Volume API. Each input is a sequence of such
// calls on a small mounted volume; refusals must be godwit::Error, nothing else may be
// thrown, and afterwards the volume must check clean (no call, accepted or refused, may
// leave it inconsistent).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "godwit/csv/checker.hpp"
#include "godwit/csv/volume.hpp"
#include "godwit/error.hpp"

using namespace godwit::csv;

namespace {

constexpr std::uint64_t kImageBytes = 256 * kBlockSize;

class Input {
  public:
    Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    bool done() const { return pos_ >= size_; }
    std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
    std::uint64_t u64(std::size_t bytes) {
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < bytes; ++i) {
            v = v << 8 | byte();
        }
        return v;
    }
    // Paths are mostly made of a few names (so calls meet each other's files), sometimes
    // of raw bytes ('/', NUL, "..", 300-byte names).
    std::string path() {
        static const char* const names[] = {"a", "b", "dir", ".snapshots", "s1", "x.vhd"};
        const std::uint8_t shape = byte();
        if (shape % 4 == 0) {
            std::string raw;
            const std::size_t n = byte() % 64 == 0 ? 300 : byte() % 24;
            for (std::size_t i = 0; i < n; ++i) {
                raw.push_back(static_cast<char>(byte()));
            }
            return raw;
        }
        std::string p;
        for (int depth = 0; depth <= shape % 3; ++depth) {
            p += "/";
            p += names[byte() % 6];
        }
        return p;
    }

  private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

// A snapshot name from a path: its last component (possibly empty or odd).
std::string last_part(const std::string& path) {
    const std::size_t slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::vector<std::byte> make_base_image() {
    MemoryBlockDevice dev(kImageBytes);
    FormatOptions f;
    f.label = "fuzz";
    f.journal_blocks = 16; // small: snapshots and resizes take several transactions
    f.inode_count = 60;
    format_volume(dev, f);
    return dev.bytes();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::vector<std::byte> base = make_base_image();
    MemoryBlockDevice dev(base);
    MountOptions o;
    o.identity = {1, "fuzz"};
    o.lease.force = true;
    {
        auto v = Volume::mount(dev, o);
        std::vector<FileHandle> handles;
        auto handle = [&](Input& in) -> FileHandle {
            if (handles.empty() || in.byte() % 8 == 0) {
                return FileHandle{in.u64(1), in.u64(1), in.u64(1)}; // forged
            }
            return handles[in.byte() % handles.size()];
        };
        std::vector<std::byte> buffer(1 << 16);
        Input in(data, size);
        for (int calls = 0; !in.done() && calls < 64; ++calls) {
            try {
                switch (in.byte() % 15) {
                case 0:
                    v->create_file(in.path(), in.u64(3) % (512 * 1024));
                    break;
                case 1:
                    v->make_directory(in.path());
                    break;
                case 2:
                    v->remove(in.path());
                    break;
                case 3: {
                    const std::string from = in.path();
                    v->rename(from, in.path());
                    break;
                }
                case 4:
                    handles.push_back(v->open(in.path()));
                    break;
                case 5: {
                    const FileHandle h = handle(in);
                    const std::uint64_t offset = in.byte() % 4 == 0 ? in.u64(8) : in.u64(3);
                    const std::size_t n = in.u64(2) % buffer.size();
                    std::memset(buffer.data(), in.byte(), n);
                    v->write(h, offset, std::span(buffer).first(n));
                    break;
                }
                case 6: {
                    const FileHandle h = handle(in);
                    v->read(h, in.u64(8), std::span(buffer).first(in.u64(2) % buffer.size()));
                    break;
                }
                case 7: {
                    const FileHandle h = handle(in);
                    v->resize(h, in.byte() % 4 == 0 ? in.u64(8) : in.u64(3));
                    break;
                }
                case 8: {
                    const FileHandle h = handle(in);
                    const std::uint64_t offset = in.u64(8);
                    v->block_map(h, offset, in.u64(8));
                    break;
                }
                case 9: {
                    const FileHandle h = handle(in);
                    const std::uint64_t offset = in.u64(8);
                    v->unshare(h, offset, in.u64(8));
                    break;
                }
                case 10:
                    v->create_snapshot(last_part(in.path()));
                    break;
                case 11:
                    v->release_snapshot(last_part(in.path()));
                    break;
                case 12:
                    if (!handles.empty()) {
                        const std::size_t i = in.byte() % handles.size();
                        v->close(handles[i]);
                        handles.erase(handles.begin() + static_cast<std::ptrdiff_t>(i));
                    }
                    break;
                case 13: {
                    const std::uint64_t ino = in.u64(8);
                    handles.push_back(v->open(ino, in.u64(8)));
                    break;
                }
                case 14:
                    v->stat(in.path());
                    v->list(in.path());
                    v->snapshots();
                    break;
                }
            } catch (const godwit::Error&) {
                // A refusal: fine, as long as the volume stays consistent (checked below).
            }
        }
        for (const FileHandle& h : handles) {
            try {
                v->close(h);
            } catch (const godwit::Error&) {
            }
        }
    }
    const CheckReport report = check_volume(dev);
    if (!report.clean()) {
        std::fprintf(stderr, "inconsistent volume: %s\n", report.problems.front().c_str());
        std::abort();
    }
    return 0;
}
