#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)
#include "godwit/csv/csv_fuse.hpp"

#include <fuse.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "godwit/csv/format.hpp"

namespace godwit::csv {

VolumeSpace read_volume_space(BlockDevice& lun) {
    AlignedBuffer buffer(kBlockSize);
    std::string problem;
    for (int attempt = 0; attempt < 5; ++attempt) {
        lun.read(0, buffer.span());
        Block block;
        std::memcpy(block.data(), buffer.data(), kBlockSize);
        problem = block_problem(block, BlockKind::superblock, 0);
        if (problem.empty()) {
            const auto sb = load<Superblock>(block);
            VolumeSpace space;
            space.label.assign(sb.label.data(), strnlen(sb.label.data(), sb.label.size()));
            space.total_blocks = sb.total_blocks;
            space.data_blocks = sb.data_end - sb.data_start;
            space.free_blocks = sb.free_blocks;
            space.inode_count = sb.inode_count;
            space.free_inodes = sb.free_inodes;
            return space;
        }
        usleep(2000); // a commit may be rewriting it: read again
    }
    throw Error(ErrorCode::invalid_input, "superblock on the LUN: " + problem);
}

void require_fuse_device() {
    struct stat device;
    if (::stat("/dev/fuse", &device) != 0 || !S_ISCHR(device.st_mode) ||
        ::access("/dev/fuse", R_OK | W_OK) != 0) {
        throw Error(ErrorCode::unsupported,
                    "/dev/fuse is missing or not a usable character device: load the fuse "
                    "module (modprobe fuse), or give the container the device "
                    "(--device /dev/fuse)");
    }
}

void require_mountpoint(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
        const int err = errno;
        if (err == ENOENT) {
            throw Error(ErrorCode::not_found,
                        "mountpoint " + path + " does not exist (create the directory first)");
        }
        if (err == ENOTCONN) {
            throw Error(ErrorCode::conflict,
                        "mountpoint " + path +
                            " is a dead FUSE mount (its node was killed): unmount it first "
                            "(umount " +
                            path + " or fusermount3 -u " + path + ")");
        }
        throw system_error("mountpoint " + path, err);
    }
    if (!S_ISDIR(st.st_mode)) {
        throw Error(ErrorCode::usage, "mountpoint " + path + " is not a directory");
    }
}

int errno_for(const godwit::Error& error, int conflict_errno) {
    const std::string_view message = error.what();
    switch (error.code()) {
    case ErrorCode::not_found:
        return ENOENT;
    case ErrorCode::conflict:
        // Snapshots (and /.snapshots itself) are read-only.
        if (message.find("read-only") != std::string_view::npos ||
            message.find("part of a snapshot") != std::string_view::npos ||
            message.find("reserved for the volume's snapshots") != std::string_view::npos) {
            return EROFS;
        }
        return conflict_errno;
    case ErrorCode::usage:
        return EINVAL;
    case ErrorCode::invalid_input:
        return message.find("name") != std::string_view::npos ? EINVAL : EIO;
    case ErrorCode::unsupported:
        return EOPNOTSUPP;
    case ErrorCode::timeout:
        return ETIMEDOUT;
    case ErrorCode::cancelled:
        return ESHUTDOWN;
    case ErrorCode::failed:
        // The volume reports exhaustion as `failed` ("volume full", "no free inodes") and a
        // single resize larger than the journal can describe as "journal is too small", a
        // file end past the data area as "exceeds the volume".
        if (message.find("full") != std::string_view::npos ||
            message.find("no free") != std::string_view::npos) {
            return ENOSPC;
        }
        return message.find("journal") != std::string_view::npos ||
                       message.find("exceeds the volume") != std::string_view::npos
                   ? EFBIG
                   : EIO;
    case ErrorCode::protocol:
        return EPROTO;
    case ErrorCode::io:
    case ErrorCode::internal:
        return EIO;
    }
    return EIO;
}

struct FuseMount::State {
    NodeClient& client;
    BlockDevice& lun;
    FuseMountOptions options;
    struct fuse* fuse = nullptr;
    bool mounted = false;
    std::once_flag stopped;
    const uid_t uid = getuid();
    const gid_t gid = getgid();
    std::mutex handles_mutex;
    std::set<std::uint64_t> handles; // open NodeClient handles, closed at the end if left

    State(NodeClient& c, BlockDevice& l, FuseMountOptions o)
        : client(c), lun(l), options(std::move(o)) {}

    void fill(const NodeEntry& e, struct stat* st) const {
        std::memset(st, 0, sizeof *st);
        st->st_ino = e.inode;
        // The format keeps no owners or permission bits: everything belongs to the mounting
        // user, directories 0755 and files 0644.
        // Snapshots are read-only.
        const bool snapshot = (e.flags & (inode_snapshot | inode_system)) != 0;
        st->st_mode = e.directory ? (S_IFDIR | (snapshot ? 0555 : 0755))
                                  : (S_IFREG | (snapshot ? 0444 : 0644));
        st->st_nlink = e.directory ? 2 : 1;
        st->st_uid = uid;
        st->st_gid = gid;
        st->st_size = static_cast<off_t>(e.size);
        st->st_blksize = static_cast<blksize_t>(kBlockSize);
        st->st_blocks = static_cast<blkcnt_t>(e.allocated_blocks * (kBlockSize / 512));
        const std::uint64_t ns = e.mtime_unix_ns;
        st->st_mtim.tv_sec = static_cast<time_t>(ns / 1000000000);
        st->st_mtim.tv_nsec = static_cast<long>(ns % 1000000000);
        st->st_ctim = st->st_mtim;
        st->st_atim = st->st_mtim;
    }

    std::uint64_t open_handle(const char* path) {
        const std::uint64_t h = client.open(path);
        std::lock_guard lock(handles_mutex);
        handles.insert(h);
        return h;
    }
    void close_handle(std::uint64_t h) {
        {
            std::lock_guard lock(handles_mutex);
            handles.erase(h);
        }
        client.close(h);
    }
};

namespace {

FuseMount::State& state() {
    return *static_cast<FuseMount::State*>(fuse_get_context()->private_data);
}

// Runs `body` (returning 0 or a byte count) and turns a thrown Error into -errno.
template <typename Body>
int guarded(const char* op, const char* path, int conflict_errno, Body&& body) {
    try {
        return body();
    } catch (const godwit::Error& e) {
        const int err = errno_for(e, conflict_errno);
        spdlog::debug("csv fuse {} {}: {} ({})", op, path, e.what(), std::strerror(err));
        return -err;
    } catch (const std::exception& e) {
        spdlog::warn("csv fuse {} {}: {}", op, path, e.what());
        return -EIO;
    }
}

// Removes a file the volume may still count as open: the kernel sends FUSE's release
// asynchronously after close() returned, so a file just closed on another node can be open
// there for a moment longer. Retries `conflict` for up to 2 s, then lets it through (EBUSY).
void remove_file(NodeClient& client, const char* path) {
    for (int attempt = 0;; ++attempt) {
        try {
            client.remove(path);
            return;
        } catch (const godwit::Error& e) {
            if (e.code() != ErrorCode::conflict || attempt >= 40) {
                throw;
            }
        }
        usleep(static_cast<useconds_t>(std::min(attempt + 1, 10) * 5000));
    }
}

bool name_too_long(const char* path) {
    const std::string_view p(path);
    const auto slash = p.rfind('/');
    return p.size() - (slash == std::string_view::npos ? 0 : slash + 1) > 255;
}

void* op_init(struct fuse_conn_info* conn, struct fuse_config* cfg) {
    // Requests of up to 1 MiB (libfuse's largest buffer) instead of the kernel's 128 KiB:
    // fewer round trips and whole-block transfers on the LUN.
    conn->max_write = 1u << 20;
    // Another node may change anything at any time: the kernel caches no names, no
    // attributes and no file data, so each request asks the volume.
    cfg->entry_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->negative_timeout = 0;
    cfg->use_ino = 1;
    cfg->direct_io = 1;
    cfg->kernel_cache = 0;
    return fuse_get_context()->private_data;
}

int op_getattr(const char* path, struct stat* st, struct fuse_file_info*) {
    if (name_too_long(path)) {
        return -ENAMETOOLONG; // the kernel looks a name up before it creates it
    }
    return guarded("getattr", path, EIO, [&] {
        auto& s = state();
        s.fill(s.client.stat(path), st);
        return 0;
    });
}

int op_readdir(const char* path, void* buf, fuse_fill_dir_t filler, off_t, struct fuse_file_info*,
               enum fuse_readdir_flags) {
    return guarded("readdir", path, ENOTDIR, [&] {
        auto& s = state();
        const auto entries = s.client.list(path);
        filler(buf, ".", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
        filler(buf, "..", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
        for (const auto& e : entries) {
            struct stat st;
            s.fill(e, &st);
            if (filler(buf, e.name.c_str(), &st, 0, static_cast<fuse_fill_dir_flags>(0)) != 0) {
                break;
            }
        }
        return 0;
    });
}

int op_mkdir(const char* path, mode_t) {
    if (name_too_long(path)) {
        return -ENAMETOOLONG;
    }
    return guarded("mkdir", path, EEXIST, [&] {
        state().client.make_directory(path);
        return 0;
    });
}

int op_unlink(const char* path) {
    return guarded("unlink", path, EBUSY, [&] {
        auto& s = state();
        if (s.client.stat(path).directory) {
            return -EISDIR;
        }
        remove_file(s.client, path); // conflict: open on some node
        return 0;
    });
}

int op_rmdir(const char* path) {
    return guarded("rmdir", path, ENOTEMPTY, [&] {
        auto& s = state();
        if (!s.client.stat(path).directory) {
            return -ENOTDIR;
        }
        s.client.remove(path);
        return 0;
    });
}

// The volume's rename refuses an existing target; POSIX replaces it. Replacing is done as
// remove + rename (two transactions: a crash between them loses the old target only).
int op_rename(const char* from, const char* to, unsigned int flags) {
    if (name_too_long(to)) {
        return -ENAMETOOLONG;
    }
    if ((flags & RENAME_EXCHANGE) != 0) {
        return -EINVAL;
    }
    return guarded("rename", from, EEXIST, [&]() -> int {
        auto& s = state();
        const NodeEntry source = s.client.stat(from);
        if (std::string_view(from) == to) {
            return 0;
        }
        NodeEntry target;
        try {
            target = s.client.stat(to);
        } catch (const godwit::Error& e) {
            if (e.code() != ErrorCode::not_found) {
                throw;
            }
            s.client.rename(from, to);
            return 0;
        }
        if ((flags & RENAME_NOREPLACE) != 0) {
            return -EEXIST;
        }
        if (target.directory && !source.directory) {
            return -EISDIR;
        }
        if (!target.directory && source.directory) {
            return -ENOTDIR;
        }
        try {
            if (target.directory) {
                s.client.remove(to);
            } else {
                remove_file(s.client, to);
            }
        } catch (const godwit::Error& e) {
            if (e.code() == ErrorCode::conflict) {
                return target.directory ? -ENOTEMPTY : -EBUSY;
            }
            throw;
        }
        s.client.rename(from, to);
        return 0;
    });
}

int op_truncate(const char* path, off_t size, struct fuse_file_info* fi) {
    if (size < 0) {
        return -EINVAL;
    }
    return guarded("truncate", path, EISDIR, [&] {
        auto& s = state();
        if (fi != nullptr) {
            s.client.resize(fi->fh, static_cast<std::uint64_t>(size));
            return 0;
        }
        const std::uint64_t h = s.open_handle(path);
        try {
            s.client.resize(h, static_cast<std::uint64_t>(size));
        } catch (...) {
            s.close_handle(h);
            throw;
        }
        s.close_handle(h);
        return 0;
    });
}

// Below /.snapshots everything is read-only (docs/csv-format.md §12).
bool in_snapshots(std::string_view path) {
    const std::string prefix = "/" + std::string(kSnapshotDirectory);
    return path.substr(0, prefix.size()) == prefix &&
           (path.size() == prefix.size() || path[prefix.size()] == '/');
}

int op_open(const char* path, struct fuse_file_info* fi) {
    if ((fi->flags & O_ACCMODE) != O_RDONLY && in_snapshots(path)) {
        return -EROFS;
    }
    return guarded("open", path, EISDIR, [&] {
        fi->fh = state().open_handle(path);
        fi->direct_io = 1;
        return 0;
    });
}

int op_create(const char* path, mode_t, struct fuse_file_info* fi) {
    if (name_too_long(path)) {
        return -ENAMETOOLONG;
    }
    if (in_snapshots(path)) {
        return -EROFS;
    }
    return guarded("create", path, EEXIST, [&] {
        auto& s = state();
        try {
            s.client.create(path, 0);
        } catch (const godwit::Error& e) {
            // O_CREAT without O_EXCL on a file another node created just now: open it.
            if (e.code() != ErrorCode::conflict || (fi->flags & O_EXCL) != 0 ||
                s.client.stat(path).directory) {
                throw;
            }
        }
        fi->fh = s.open_handle(path);
        fi->direct_io = 1;
        return 0;
    });
}

int op_release(const char* path, struct fuse_file_info* fi) {
    return guarded("release", path, EIO, [&] {
        state().close_handle(fi->fh);
        return 0;
    });
}

int op_read(const char* path, char* buf, size_t size, off_t offset, struct fuse_file_info* fi) {
    return guarded("read", path, EIO, [&] {
        auto out = std::span<std::byte>(reinterpret_cast<std::byte*>(buf), size);
        return static_cast<int>(
            state().client.read(fi->fh, static_cast<std::uint64_t>(offset), out));
    });
}

int op_write(const char* path, const char* buf, size_t size, off_t offset,
             struct fuse_file_info* fi) {
    return guarded("write", path, EIO, [&] {
        auto& s = state();
        std::uint64_t at = static_cast<std::uint64_t>(offset);
        if ((fi->flags & O_APPEND) != 0) {
            at = s.client.stat(path).size; // O_APPEND: at the end as the volume knows it
        }
        s.client.write(fi->fh, at,
                       std::span<const std::byte>(reinterpret_cast<const std::byte*>(buf), size));
        return static_cast<int>(size);
    });
}

// Metadata is already durable (every change is a committed journal transaction); file
// data went straight to the LUN, so only the device's write cache is left to flush.
int op_fsync(const char* path, int, struct fuse_file_info*) {
    return guarded("fsync", path, EIO, [&] {
        state().lun.flush();
        return 0;
    });
}

int op_statfs(const char* path, struct statvfs* st) {
    return guarded("statfs", path, EIO, [&] {
        const VolumeSpace space = read_volume_space(state().lun);
        std::memset(st, 0, sizeof *st);
        st->f_bsize = kBlockSize;
        st->f_frsize = kBlockSize;
        st->f_blocks = space.data_blocks;
        st->f_bfree = space.free_blocks;
        st->f_bavail = space.free_blocks;
        st->f_files = space.inode_count - 1; // inode 0 is reserved
        st->f_ffree = space.free_inodes;
        st->f_favail = space.free_inodes;
        st->f_namemax = 255;
        return 0;
    });
}

// No times or permission bits can be set (the format keeps mtime only, set by metadata
// changes); accepting utimens keeps `touch` and copy tools working.
int op_utimens(const char*, const struct timespec[2], struct fuse_file_info*) {
    return 0;
}

int op_chmod(const char* path, mode_t mode, struct fuse_file_info*) {
    return guarded("chmod", path, EIO, [&] {
        const bool directory = state().client.stat(path).directory;
        return (mode & 07777) == (directory ? 0755u : 0644u) ? 0 : -EPERM;
    });
}

int op_chown(const char*, uid_t uid, gid_t gid, struct fuse_file_info*) {
    auto& s = state();
    const bool same = (uid == static_cast<uid_t>(-1) || uid == s.uid) &&
                      (gid == static_cast<gid_t>(-1) || gid == s.gid);
    return same ? 0 : -EPERM;
}

// After an unmount the kernel sends no more releases: close what is still open so the
// coordinator's open counts drop.
void op_destroy(void* data) {
    auto& s = *static_cast<FuseMount::State*>(data);
    std::set<std::uint64_t> left;
    {
        std::lock_guard lock(s.handles_mutex);
        left.swap(s.handles);
    }
    for (std::uint64_t h : left) {
        try {
            s.client.close(h);
        } catch (const std::exception& e) {
            spdlog::warn("csv fuse: closing a file left open at unmount: {}", e.what());
        }
    }
}

struct fuse_operations make_operations() {
    struct fuse_operations ops {};
    ops.init = op_init;
    ops.destroy = op_destroy;
    ops.getattr = op_getattr;
    ops.readdir = op_readdir;
    ops.mkdir = op_mkdir;
    ops.unlink = op_unlink;
    ops.rmdir = op_rmdir;
    ops.rename = op_rename;
    ops.truncate = op_truncate;
    ops.open = op_open;
    ops.create = op_create;
    ops.release = op_release;
    ops.read = op_read;
    ops.write = op_write;
    ops.fsync = op_fsync;
    ops.statfs = op_statfs;
    ops.utimens = op_utimens;
    ops.chmod = op_chmod;
    ops.chown = op_chown;
    return ops;
}

} // namespace

FuseMount::FuseMount(NodeClient& client, BlockDevice& lun, FuseMountOptions options)
    : state_(std::make_unique<State>(client, lun, std::move(options))) {
    State& s = *state_;
    require_fuse_device();
    require_mountpoint(s.options.mountpoint);
    std::vector<std::string> args{"godwit-csv", "-o",
                                  "fsname=csv:" + s.options.volume_label + ",subtype=godwit-csv"};
    if (s.options.allow_other) {
        args.insert(args.end(), {"-o", "allow_other"});
    }
    if (s.options.debug) {
        args.emplace_back("-d");
    }
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    struct fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
    const struct fuse_operations ops = make_operations();
    s.fuse = fuse_new(&fargs, &ops, sizeof ops, &s);
    fuse_opt_free_args(&fargs);
    if (s.fuse == nullptr) {
        throw Error(ErrorCode::internal, "fuse_new refused the options");
    }
    if (fuse_mount(s.fuse, s.options.mountpoint.c_str()) != 0) {
        fuse_destroy(s.fuse);
        throw Error(ErrorCode::io, "the kernel refused to mount FUSE at " + s.options.mountpoint +
                                       " (see the message above; is it already mounted?)");
    }
    s.mounted = true;
}

FuseMount::~FuseMount() {
    State& s = *state_;
    if (s.mounted) {
        fuse_unmount(s.fuse); // a no-op when run() already saw the unmount
    }
    fuse_destroy(s.fuse); // calls op_destroy when the file system was initialised
    op_destroy(&s);
}

int FuseMount::run() {
    State& s = *state_;
    struct fuse_loop_config* config = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(config, s.options.max_threads);
    const int rc = fuse_loop_mt(s.fuse, config);
    fuse_loop_cfg_destroy(config);
    return rc;
}

void FuseMount::stop() {
    State& s = *state_;
    std::call_once(s.stopped, [&] {
        // libfuse's workers notice the exit flag only after their next request, and a lazy
        // unmount of a busy mount sends none: keep the root open across the unmount and
        // ask for its attributes once the flag is set, so one worker wakes and the loop
        // ends even while other processes still hold files.
        const int root = ::open(s.options.mountpoint.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        fuse_exit(s.fuse);
        fuse_unmount(s.fuse);
        if (root >= 0) {
            struct stat st;
            (void)::fstat(root, &st);
            ::close(root);
        }
    });
}

const std::string& FuseMount::mountpoint() const {
    return state_->options.mountpoint;
}

} // namespace godwit::csv
