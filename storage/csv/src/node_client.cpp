#include "godwit/csv/node_client.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "csv_protocol.pb.h"
#include "godwit/csv/format.hpp"
#include "godwit/csv/framing.hpp"
#include "godwit/error.hpp"

namespace godwit::csv {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
namespace pb = godwit::csv::protocol;
using Clock = std::chrono::steady_clock;

namespace {

struct NodeFile {
    std::uint64_t inode = 0;
    std::uint64_t generation = 0; // a map for another generation is for a reused inode
    std::uint64_t size = 0;
    std::shared_mutex io; // shared: data I/O with the map; exclusive: dropping the map
    std::optional<pb::BlockMapReply> map;
    Clock::time_point fetched;
};

} // namespace

struct NodeClient::State {
    BlockDevice& lun;
    std::chrono::milliseconds map_lease;
    asio::io_context io;
    tcp::socket socket{io};
    std::mutex write_mutex;
    std::thread reader;
    std::atomic<bool> closing{false};

    std::mutex calls_mutex;
    std::uint64_t next_request = 1;
    std::map<std::uint64_t, std::promise<pb::CoordinatorMessage>> pending;
    std::string failure; // set when the connection died

    std::mutex files_mutex;
    std::map<std::uint64_t, std::shared_ptr<NodeFile>> files; // by handle
    std::set<std::uint64_t> revoked;                          // lease ids already revoked
    std::atomic<std::uint64_t> revocations{0};
    std::atomic<std::uint64_t> maps{0};

    State(BlockDevice& d, std::chrono::milliseconds lease) : lun(d), map_lease(lease) {}

    void send(const pb::NodeMessage& m) {
        std::lock_guard lock(write_mutex);
        send_frame(socket, m);
    }

    pb::CoordinatorMessage call(pb::NodeMessage& request) {
        std::future<pb::CoordinatorMessage> reply;
        {
            std::lock_guard lock(calls_mutex);
            if (!failure.empty()) {
                throw Error(ErrorCode::io, failure);
            }
            request.set_request_id(next_request++);
            reply = pending[request.request_id()].get_future();
        }
        send(request);
        pb::CoordinatorMessage m = reply.get(); // throws if the connection died
        if (m.has_error()) {
            throw Error(static_cast<ErrorCode>(m.error().code()),
                        "coordinator: " + m.error().message());
        }
        return m;
    }

    void on_revoke(const pb::Revoke& revoke) {
        std::vector<std::shared_ptr<NodeFile>> affected;
        {
            std::lock_guard lock(files_mutex);
            revoked.insert(revoke.lease_id());
            for (auto& [h, f] : files) {
                if (f->inode == revoke.inode()) {
                    affected.push_back(f);
                }
            }
        }
        for (auto& f : affected) {
            std::unique_lock lock(f->io); // waits for this node's in-flight I/O on the file
            if (f->map && f->map->lease_id() == revoke.lease_id()) {
                f->map.reset();
            }
        }
        ++revocations;
        pb::NodeMessage ack;
        ack.mutable_revoke_ack()->set_lease_id(revoke.lease_id());
        send(ack);
    }

    void read_loop() {
        std::string why = "the coordinator closed the connection";
        try {
            pb::CoordinatorMessage m;
            while (receive_frame(socket, m)) {
                if (m.has_revoke()) {
                    on_revoke(m.revoke());
                    continue;
                }
                std::lock_guard lock(calls_mutex);
                auto it = pending.find(m.request_id());
                if (it != pending.end()) {
                    it->second.set_value(m);
                    pending.erase(it);
                }
            }
        } catch (const std::exception& e) {
            why = std::string("connection to the coordinator lost: ") + e.what();
        }
        std::lock_guard lock(calls_mutex);
        failure = why;
        for (auto& [id, p] : pending) {
            p.set_exception(std::make_exception_ptr(Error(ErrorCode::io, why)));
        }
        pending.clear();
    }

    std::shared_ptr<NodeFile> file(std::uint64_t handle) {
        std::lock_guard lock(files_mutex);
        auto it = files.find(handle);
        if (it == files.end()) {
            throw Error(ErrorCode::usage, "unknown file handle " + std::to_string(handle));
        }
        return it->second;
    }

    // Gets a fresh map for the file (the coordinator refuses while it changes the map).
    void fetch_map(std::uint64_t handle, NodeFile& f) {
        for (int attempt = 0;; ++attempt) {
            pb::NodeMessage request;
            request.mutable_map()->set_handle(handle);
            request.mutable_map()->set_offset(0);
            request.mutable_map()->set_length(UINT64_MAX);
            try {
                pb::CoordinatorMessage reply = call(request);
                std::unique_lock lock(f.io);
                std::lock_guard files_lock(files_mutex);
                if (revoked.count(reply.map().lease_id())) {
                    continue; // revoked before it arrived: ask again
                }
                if (reply.map().inode() != f.inode || reply.map().generation() != f.generation) {
                    throw Error(ErrorCode::protocol,
                                "the coordinator sent the map of another file");
                }
                f.map = reply.map();
                f.size = reply.map().size();
                f.fetched = Clock::now();
                ++maps;
                return;
            } catch (const Error& e) {
                if (e.code() != ErrorCode::conflict || attempt > 2000) {
                    throw;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
        }
    }

    bool map_usable(const NodeFile& f, std::uint64_t end) const {
        return f.map && Clock::now() - f.fetched < map_lease && end <= f.map->size();
    }

    // Direct I/O on the LUN through the map: block-aligned pieces, read-modify-write at the
    // edges (O_DIRECT needs 4 KiB alignment).
    void transfer(const pb::BlockMapReply& map, std::uint64_t offset, std::byte* data,
                  std::size_t length, bool writing) {
        constexpr std::size_t kBounce = 1 << 20;
        std::size_t done = 0;
        AlignedBuffer buffer; // only for pieces that are not whole blocks
        while (done < length) {
            const std::uint64_t pos = offset + done;
            const pb::Segment* seg = nullptr;
            for (const auto& s : map.segments()) {
                if (pos >= s.file_offset() && pos < s.file_offset() + s.length()) {
                    seg = &s;
                    break;
                }
            }
            if (seg == nullptr) {
                throw Error(ErrorCode::protocol,
                            "block map does not cover offset " + std::to_string(pos));
            }
            const std::uint64_t in_block = pos % kBlockSize;
            const std::uint64_t seg_left = seg->file_offset() + seg->length() - pos;
            const std::uint64_t device =
                seg->device_offset() + (pos - seg->file_offset()) - in_block;
            const std::uint64_t want = std::min<std::uint64_t>(seg_left, length - done);
            if (in_block == 0 && want >= kBlockSize) {
                // Whole blocks straight from/to the caller's buffer (the device bounces only
                // when the memory itself is not aligned for O_DIRECT).
                const std::size_t n = static_cast<std::size_t>(want / kBlockSize * kBlockSize);
                if (writing) {
                    lun.write(device, std::span<const std::byte>(data + done, n));
                } else {
                    lun.read(device, std::span<std::byte>(data + done, n));
                }
                done += n;
                continue;
            }
            if (buffer.size() == 0) {
                buffer = AlignedBuffer(kBounce);
            }
            const std::size_t n =
                static_cast<std::size_t>(std::min<std::uint64_t>(want, kBounce - in_block));
            const std::size_t io =
                static_cast<std::size_t>((in_block + n + kBlockSize - 1) / kBlockSize * kBlockSize);
            if (writing) {
                if (in_block != 0 || (in_block + n) % kBlockSize != 0) {
                    lun.read(device, buffer.span().first(io));
                }
                std::memcpy(buffer.data() + in_block, data + done, n);
                lun.write(device, buffer.span().first(io));
            } else {
                lun.read(device, buffer.span().first(io));
                std::memcpy(data + done, buffer.data() + in_block, n);
            }
            done += n;
        }
    }
};

NodeClient::NodeClient(const std::string& address, std::uint16_t port, BlockDevice& lun,
                       std::uint64_t node_id, const std::string& node_name,
                       std::chrono::milliseconds map_lease)
    : state_(std::make_unique<State>(lun, map_lease)) {
    State& s = *state_;
    boost::system::error_code ec;
    s.socket.connect(tcp::endpoint(asio::ip::make_address(address), port), ec);
    if (ec) {
        throw Error(ErrorCode::io, "cannot reach the CSV coordinator at " + address + ":" +
                                       std::to_string(port) + ": " + ec.message());
    }
    s.socket.set_option(tcp::no_delay(true));
    s.reader = std::thread([&s] { s.read_loop(); });
    pb::NodeMessage hello;
    hello.mutable_register_node()->set_node_id(node_id);
    hello.mutable_register_node()->set_node_name(node_name);
    s.call(hello);
}

NodeClient::~NodeClient() {
    State& s = *state_;
    boost::system::error_code ec;
    s.socket.shutdown(tcp::socket::shutdown_both, ec);
    if (s.reader.joinable()) {
        s.reader.join();
    }
}

void NodeClient::create(const std::string& path, std::uint64_t size) {
    pb::NodeMessage request;
    request.mutable_create()->set_path(path);
    request.mutable_create()->set_size(size);
    state_->call(request);
}

namespace {
NodeEntry entry_of(const pb::FileReply& f) {
    return NodeEntry{f.name(), f.inode(), f.size(), f.directory()};
}
} // namespace

void NodeClient::make_directory(const std::string& path) {
    pb::NodeMessage request;
    request.mutable_mkdir()->set_path(path);
    state_->call(request);
}

void NodeClient::remove(const std::string& path) {
    pb::NodeMessage request;
    request.mutable_remove()->set_path(path);
    state_->call(request);
}

void NodeClient::rename(const std::string& from, const std::string& to) {
    pb::NodeMessage request;
    request.mutable_rename()->set_from(from);
    request.mutable_rename()->set_to(to);
    state_->call(request);
}

NodeEntry NodeClient::stat(const std::string& path) {
    pb::NodeMessage request;
    request.mutable_stat()->set_path(path);
    return entry_of(state_->call(request).file());
}

std::vector<NodeEntry> NodeClient::list(const std::string& directory) {
    pb::NodeMessage request;
    request.mutable_list()->set_path(directory);
    std::vector<NodeEntry> out;
    const pb::CoordinatorMessage reply = state_->call(request);
    for (const auto& f : reply.list().entries()) {
        out.push_back(entry_of(f));
    }
    return out;
}

std::uint64_t NodeClient::open(const std::string& path) {
    pb::NodeMessage request;
    request.mutable_open()->set_path(path);
    auto reply = state_->call(request);
    auto f = std::make_shared<NodeFile>();
    f->inode = reply.file().inode();
    f->generation = reply.file().generation();
    f->size = reply.file().size();
    std::lock_guard lock(state_->files_mutex);
    state_->files[reply.file().handle()] = f;
    return reply.file().handle();
}

void NodeClient::close(std::uint64_t handle) {
    auto f = state_->file(handle);
    {
        std::unique_lock lock(f->io);
        f->map.reset();
    }
    pb::NodeMessage request;
    request.mutable_close()->set_handle(handle);
    state_->call(request);
    std::lock_guard lock(state_->files_mutex);
    state_->files.erase(handle);
}

void NodeClient::resize(std::uint64_t handle, std::uint64_t size) {
    auto f = state_->file(handle);
    {
        std::unique_lock lock(f->io); // our own map goes before we ask for the change
        f->map.reset();
    }
    pb::NodeMessage request;
    request.mutable_resize()->set_handle(handle);
    request.mutable_resize()->set_size(size);
    auto reply = state_->call(request);
    std::unique_lock lock(f->io);
    f->size = reply.file().size();
}

std::uint64_t NodeClient::size(std::uint64_t handle) {
    auto f = state_->file(handle);
    std::shared_lock lock(f->io);
    return f->size;
}

void NodeClient::write(std::uint64_t handle, std::uint64_t offset,
                       std::span<const std::byte> data) {
    auto f = state_->file(handle);
    const std::uint64_t end = offset + data.size();
    {
        std::shared_lock lock(f->io);
        if (end > f->size) {
            lock.unlock();
            resize(handle, end);
        }
    }
    for (;;) {
        {
            std::shared_lock lock(f->io);
            if (state_->map_usable(*f, end)) {
                state_->transfer(*f->map, offset, const_cast<std::byte*>(data.data()), data.size(),
                                 true);
                return;
            }
        }
        state_->fetch_map(handle, *f);
    }
}

std::size_t NodeClient::read(std::uint64_t handle, std::uint64_t offset, std::span<std::byte> out) {
    auto f = state_->file(handle);
    for (;;) {
        {
            std::shared_lock lock(f->io);
            if (f->map && state_->map_usable(*f, 0)) {
                if (offset >= f->map->size()) {
                    return 0;
                }
                const std::size_t n = static_cast<std::size_t>(
                    std::min<std::uint64_t>(out.size(), f->map->size() - offset));
                state_->transfer(*f->map, offset, out.data(), n, false);
                return n;
            }
        }
        state_->fetch_map(handle, *f);
    }
}

std::uint64_t NodeClient::revocations_received() const {
    return state_->revocations;
}
std::uint64_t NodeClient::maps_fetched() const {
    return state_->maps;
}

} // namespace godwit::csv
