#include "godwit/csv/node_client.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "csv_protocol.pb.h"
#include "godwit/csv/channel.hpp"
#include "godwit/csv/format.hpp"
#include "godwit/error.hpp"

namespace godwit::csv {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
namespace pb = godwit::csv::protocol;
using Clock = std::chrono::steady_clock;

std::string_view to_string(IoState state) noexcept {
    switch (state) {
    case IoState::direct:
        return "Direct";
    case IoState::redirected:
        return "Redirected";
    case IoState::paused:
        return "Paused";
    }
    return "?";
}

namespace {

constexpr std::size_t kRedirectChunk = 1 << 20; // per message (docs/csv-protocol.md)

// The connection to the coordinator broke under a call: send it again to the next one.
struct ConnectionLost : std::runtime_error {
    ConnectionLost() : std::runtime_error("connection to the coordinator lost") {}
};
// The LUN failed under this node: go Redirected.
struct PathLost {};

struct NodeFile {
    std::uint64_t remote = 0; // handle at the current coordinator (guarded by files_mutex)
    std::uint64_t inode = 0;
    std::uint64_t generation = 0; // a map for another generation is for a reused inode
    std::uint64_t size = 0;
    bool gone = false;    // not found again after a coordinator change
    std::shared_mutex io; // shared: data I/O with the map; exclusive: dropping the map
    std::optional<pb::BlockMapReply> map;
    Clock::time_point fetched;
};

struct Connection {
    std::unique_ptr<Channel> channel;
    std::mutex calls_mutex;
    std::map<std::uint64_t, std::promise<pb::CoordinatorMessage>> pending;
    bool dead = false;
    std::uint64_t epoch = 0;
    std::thread reader;
    void send(const pb::NodeMessage& m) { channel->send(m); }
    // Marks the connection dead, fails every waiting call, and wakes the reader.
    void kill() {
        {
            std::lock_guard lock(calls_mutex);
            dead = true;
            for (auto& [id, p] : pending) {
                p.set_exception(std::make_exception_ptr(ConnectionLost()));
            }
            pending.clear();
        }
        if (channel) {
            channel->shutdown();
        }
    }
};

} // namespace

struct NodeClient::State {
    NodeOptions options;
    BlockDevice& lun;

    std::mutex conn_mutex;
    std::condition_variable conn_cv;
    std::shared_ptr<Connection> conn; // the coordinator; dead or null while Paused
    bool closing = false;
    std::string fatal; // gave up looking for a coordinator
    std::atomic<std::uint64_t> epoch{0};
    std::atomic<std::uint64_t> next_request{1};
    std::thread supervisor;

    std::atomic<bool> path_lost{false};
    std::atomic<bool> paused{true};

    std::mutex files_mutex;
    std::uint64_t next_handle = 1;
    std::map<std::uint64_t, std::shared_ptr<NodeFile>> files; // by this node's handle
    std::set<std::uint64_t> revoked;                          // lease ids revoked in this epoch

    std::atomic<std::uint64_t> revocations{0};
    std::atomic<std::uint64_t> maps{0};
    std::atomic<std::uint64_t> reconnects{0};
    std::atomic<std::uint64_t> redirected{0};
    // Writes that went through the coordinator since its last FlushData (flush() asks it to
    // make them durable; writes on our own path are flushed by our own fdatasync).
    std::atomic<std::uint64_t> unflushed_redirected{0};
    std::atomic<std::uint64_t> copies{0}; // copy-on-write requests
    std::atomic<std::int64_t> longest_pause_ms{0};

    State(NodeOptions o, BlockDevice& d) : options(std::move(o)), lun(d) {}

    IoState io_state() const {
        return paused ? IoState::paused : path_lost ? IoState::redirected : IoState::direct;
    }

    // ---- coordinator connection --------------------------------------------------------

    // Synchronous request on a connection whose reader is not running yet.    // A stopped or
    // partitioned process accepts (the kernel does) but never answers.
    pb::CoordinatorMessage exchange(Connection& c, pb::NodeMessage& m) const {
        m.set_request_id(0);
        c.send(m);
        pb::CoordinatorMessage reply;
        if (!c.channel->receive(reply,
                                std::min(options.call_timeout, std::chrono::milliseconds(2000)))) {
            throw Error(ErrorCode::io, "the node closed the connection");
        }
        return reply;
    }

    // Connects to `peer`; returns the connection when it is the coordinator, after this
    // node's open files were opened there again. Null when it is not (or not reachable).
    std::shared_ptr<Connection> try_coordinator(const Endpoint& peer) {
        auto c = std::make_shared<Connection>();
        try {
            c->channel = connect_channel(peer, options.tls, std::chrono::milliseconds(2000));
            pb::NodeMessage hello;
            hello.mutable_register_node()->set_node_id(options.node_id);
            hello.mutable_register_node()->set_node_name(options.node_name);
            if (exchange(*c, hello).has_error()) {
                return nullptr; // a standby, or a coordinator that is being fenced
            }
            std::vector<std::shared_ptr<NodeFile>> open_files;
            {
                std::lock_guard lock(files_mutex);
                for (auto& [h, f] : files) {
                    if (!f->gone) {
                        open_files.push_back(f);
                    }
                }
            }
            for (auto& f : open_files) {
                pb::NodeMessage reopen;
                reopen.mutable_reopen()->set_inode(f->inode);
                reopen.mutable_reopen()->set_generation(f->generation);
                pb::CoordinatorMessage r = exchange(*c, reopen);
                std::unique_lock io(f->io);
                std::lock_guard lock(files_mutex);
                if (r.has_error()) {
                    if (r.error().not_coordinator() ||
                        static_cast<ErrorCode>(r.error().code()) != ErrorCode::not_found) {
                        return nullptr;
                    }
                    f->gone = true;
                    spdlog::warn("csv node {}: inode {} is gone after the coordinator change",
                                 options.node_id, f->inode);
                    continue;
                }
                f->remote = r.file().handle();
                f->size = r.file().size();
            }
            pb::NodeMessage state;
            state.mutable_state()->set_state(path_lost ? pb::REDIRECTED : pb::DIRECT);
            if (exchange(*c, state).has_error()) {
                return nullptr;
            }
            return c;
        } catch (const std::exception& e) {
            spdlog::debug("csv node {}: {} is not usable: {}", options.node_id, peer.text(),
                          e.what());
            return nullptr;
        }
    }

    void read_loop(Connection& c) {
        try {
            pb::CoordinatorMessage m;
            while (c.channel->receive(m)) {
                if (m.has_revoke()) {
                    on_revoke(c, m.revoke());
                    continue;
                }
                std::lock_guard lock(c.calls_mutex);
                auto it = c.pending.find(m.request_id());
                if (it != c.pending.end()) {
                    it->second.set_value(m);
                    c.pending.erase(it);
                }
            }
        } catch (const std::exception& e) {
            spdlog::debug("csv node {}: connection lost: {}", options.node_id, e.what());
        }
        c.kill();
        conn_cv.notify_all();
    }

    void drop_all_maps() {
        std::vector<std::shared_ptr<NodeFile>> all;
        {
            std::lock_guard lock(files_mutex);
            for (auto& [h, f] : files) {
                all.push_back(f);
            }
        }
        for (auto& f : all) {
            std::unique_lock lock(f->io); // waits for in-flight direct I/O
            f->map.reset();
        }
    }

    // Keeps a coordinator connection: finds one whenever the current one dies, and probes
    // the LUN path while Redirected.
    void supervise() {
        std::shared_ptr<Connection> old;
        for (;;) {
            {
                std::unique_lock lock(conn_mutex);
                if (conn && !conn->dead) {
                    conn_cv.wait_for(lock, options.probe_interval,
                                     [&] { return closing || conn->dead; });
                }
                if (closing) {
                    return;
                }
                if (conn && !conn->dead) {
                    lock.unlock();
                    if (path_lost) {
                        probe_path();
                    }
                    continue;
                }
                old = std::move(conn);
            }
            const auto since = Clock::now();
            paused = true;
            if (old) {
                old->kill();
                if (old->reader.joinable()) {
                    old->reader.join();
                }
                old.reset();
                spdlog::info("csv node {}: lost the coordinator, I/O paused", options.node_id);
            }
            drop_all_maps();
            std::shared_ptr<Connection> next;
            for (std::size_t round = 0; !next; ++round) {
                for (const Endpoint& peer : options.listeners) {
                    {
                        std::lock_guard lock(conn_mutex);
                        if (closing) {
                            return;
                        }
                    }
                    if ((next = try_coordinator(peer))) {
                        break;
                    }
                }
                if (next) {
                    break;
                }
                if (Clock::now() - since > options.pause_limit) {
                    std::lock_guard lock(conn_mutex);
                    fatal = "no CSV coordinator answered for " +
                            std::to_string(options.pause_limit.count()) + " ms";
                    conn_cv.notify_all();
                    spdlog::error("csv node {}: {}", options.node_id, fatal);
                    return;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            {
                std::lock_guard lock(files_mutex);
                revoked.clear();
            }
            next->epoch = ++epoch;
            Connection* raw = next.get();
            next->reader = std::thread([this, raw] { read_loop(*raw); });
            const auto pause =
                std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since);
            if (epoch > 1) {
                longest_pause_ms = std::max<std::int64_t>(longest_pause_ms, pause.count());
                ++reconnects;
                spdlog::info("csv node {}: re-registered with a coordinator after {} ms",
                             options.node_id, pause.count());
            }
            paused = false;
            std::lock_guard lock(conn_mutex);
            conn = std::move(next);
            conn_cv.notify_all();
        }
    }

    std::shared_ptr<Connection> current() {
        std::unique_lock lock(conn_mutex);
        conn_cv.wait(lock, [&] { return closing || !fatal.empty() || (conn && !conn->dead); });
        if (closing) {
            throw Error(ErrorCode::cancelled, "the CSV node is shutting down");
        }
        if (!fatal.empty()) {
            throw Error(ErrorCode::io, fatal);
        }
        return conn;
    }

    struct Reply {
        pb::CoordinatorMessage message;
        std::uint64_t epoch = 0;
        bool retried = false; // sent more than once (the first may have taken effect)
    };

    // Sends the request `build` makes to the coordinator and waits for its answer, across
    // coordinator changes (built again each time: handles change with the coordinator).
    Reply call(const std::function<void(pb::NodeMessage&)>& build) {
        Reply out;
        for (int attempt = 0;; ++attempt) {
            if (attempt > 0) {
                out.retried = true;
            }
            std::shared_ptr<Connection> c = current();
            pb::NodeMessage request;
            build(request);
            const std::uint64_t id = next_request++;
            request.set_request_id(id);
            std::future<pb::CoordinatorMessage> reply;
            {
                std::lock_guard lock(c->calls_mutex);
                if (c->dead) {
                    continue;
                }
                reply = c->pending[id].get_future();
            }
            try {
                c->send(request);
            } catch (const Error&) {
                c->kill();
                continue;
            }
            if (reply.wait_for(options.call_timeout) != std::future_status::ready) {
                spdlog::warn("csv node {}: the coordinator did not answer in {} ms",
                             options.node_id, options.call_timeout.count());
                c->kill();
                continue;
            }
            try {
                out.message = reply.get();
            } catch (const ConnectionLost&) {
                continue;
            }
            if (out.message.has_error() && out.message.error().not_coordinator()) {
                c->kill(); // it was fenced or handed over: find the new coordinator
                continue;
            }
            if (out.message.has_error()) {
                throw Error(static_cast<ErrorCode>(out.message.error().code()),
                            "coordinator: " + out.message.error().message());
            }
            out.epoch = c->epoch;
            return out;
        }
    }

    void notify_state() {
        std::shared_ptr<Connection> c;
        {
            std::lock_guard lock(conn_mutex);
            c = conn;
        }
        if (!c) {
            return; // sent on re-registration
        }
        pb::NodeMessage m;
        m.set_request_id(0); // the reply is not awaited
        m.mutable_state()->set_state(path_lost ? pb::REDIRECTED : pb::DIRECT);
        try {
            c->send(m);
        } catch (const Error&) {
        }
    }

    void lose_path() {
        if (!path_lost.exchange(true)) {
            spdlog::warn("csv node {}: LUN path lost, redirecting I/O through the coordinator",
                         options.node_id);
            notify_state();
        }
    }

    void probe_path() {
        try {
            lun.reopen();
            AlignedBuffer block(kBlockSize);
            lun.read(0, block.span());
        } catch (const Error&) {
            return; // still gone
        }
        path_lost = false;
        spdlog::info("csv node {}: LUN path back, direct I/O again", options.node_id);
        notify_state();
    }

    // ---- files ---------------------------------------------------------------------------

    void on_revoke(Connection& c, const pb::Revoke& revoke) {
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
        c.send(ack);
    }

    std::shared_ptr<NodeFile> file(std::uint64_t handle) {
        std::lock_guard lock(files_mutex);
        auto it = files.find(handle);
        if (it == files.end()) {
            throw Error(ErrorCode::usage, "unknown file handle " + std::to_string(handle));
        }
        if (it->second->gone) {
            throw Error(ErrorCode::not_found, "the file was removed during a coordinator change");
        }
        return it->second;
    }

    std::uint64_t remote_of(NodeFile& f) {
        std::lock_guard lock(files_mutex);
        if (f.gone) {
            throw Error(ErrorCode::not_found, "the file was removed during a coordinator change");
        }
        return f.remote;
    }

    // Gets a fresh map for the file (the coordinator refuses while it changes the map).
    void fetch_map(NodeFile& f) {
        for (int attempt = 0;; ++attempt) {
            try {
                Reply r = call([&](pb::NodeMessage& m) {
                    m.mutable_map()->set_handle(remote_of(f));
                    m.mutable_map()->set_offset(0);
                    m.mutable_map()->set_length(UINT64_MAX);
                });
                std::unique_lock lock(f.io);
                std::lock_guard files_lock(files_mutex);
                if (revoked.count(r.message.map().lease_id()) || r.epoch != epoch) {
                    continue; // revoked before it arrived, or from a former coordinator
                }
                if (r.message.map().inode() != f.inode ||
                    r.message.map().generation() != f.generation) {
                    throw Error(ErrorCode::protocol,
                                "the coordinator sent the map of another file");
                }
                f.map = r.message.map();
                f.size = r.message.map().size();
                f.fetched = Clock::now();
                ++maps;
                return;
            } catch (const Error& e) {
                if (e.code() != ErrorCode::conflict || attempt > 5000) {
                    throw;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
        }
    }

    // Whether the map marks part of [offset, end) shared with a snapshot (copy first).
    static bool shares(const pb::BlockMapReply& map, std::uint64_t offset, std::uint64_t end) {
        for (const auto& seg : map.segments()) {
            if (seg.shared() && seg.file_offset() < end &&
                offset < seg.file_offset() + seg.length()) {
                return true;
            }
        }
        return false;
    }

    bool map_usable(const NodeFile& f, std::uint64_t end) const {
        return f.map && Clock::now() - f.fetched < options.map_lease && end <= f.map->size();
    }

    void lun_io(std::uint64_t device, std::byte* data, std::size_t n, bool writing) {
        try {
            if (writing) {
                lun.write(device, std::span<const std::byte>(data, n));
            } else {
                lun.read(device, std::span<std::byte>(data, n));
            }
        } catch (const Error& e) {
            if (e.code() == ErrorCode::io || e.code() == ErrorCode::not_found) {
                throw PathLost{};
            }
            throw;
        }
    }

    // Direct I/O on the LUN through the map: block-aligned pieces, read-modify-write at the
    // edges (O_DIRECT needs 4 KiB alignment). Throws PathLost when the LUN fails.
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
            if (writing && seg->shared()) {
                throw Error(ErrorCode::internal, "write to blocks a snapshot shares");
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
                lun_io(device, data + done, n, writing);
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
                    lun_io(device, buffer.data(), io, false);
                }
                std::memcpy(buffer.data() + in_block, data + done, n);
                lun_io(device, buffer.data(), io, true);
            } else {
                lun_io(device, buffer.data(), io, false);
                std::memcpy(data + done, buffer.data() + in_block, n);
            }
            done += n;
        }
    }

    void redirected_write(NodeFile& f, std::uint64_t offset, std::span<const std::byte> data) {
        for (std::size_t done = 0; done < data.size();) {
            const std::size_t n = std::min(kRedirectChunk, data.size() - done);
            call([&](pb::NodeMessage& m) {
                m.mutable_write()->set_handle(remote_of(f));
                m.mutable_write()->set_offset(offset + done);
                m.mutable_write()->set_data(reinterpret_cast<const char*>(data.data() + done), n);
            });
            redirected += n;
            unflushed_redirected += n;
            done += n;
        }
    }

    std::size_t redirected_read(NodeFile& f, std::uint64_t offset, std::span<std::byte> out) {
        std::size_t done = 0;
        while (done < out.size()) {
            const std::size_t n = std::min(kRedirectChunk, out.size() - done);
            Reply r = call([&](pb::NodeMessage& m) {
                m.mutable_read()->set_handle(remote_of(f));
                m.mutable_read()->set_offset(offset + done);
                m.mutable_read()->set_length(n);
            });
            const std::string& bytes = r.message.data().data();
            if (bytes.size() > n) {
                throw Error(ErrorCode::protocol, "redirected read returned too much");
            }
            std::memcpy(out.data() + done, bytes.data(), bytes.size());
            redirected += bytes.size();
            done += bytes.size();
            if (bytes.size() < n) {
                break; // end of file
            }
        }
        return done;
    }
};

NodeClient::NodeClient(NodeOptions options, BlockDevice& lun)
    : state_(std::make_unique<State>(std::move(options), lun)) {
    State& s = *state_;
    if (s.options.listeners.empty()) {
        throw Error(ErrorCode::usage, "a CSV node needs at least one listener to ask");
    }
    // The first coordinator is found here, so the constructor fails for a cluster that
    // does not answer at all.
    const auto since = Clock::now();
    std::shared_ptr<Connection> first;
    while (!first) {
        for (const Endpoint& peer : s.options.listeners) {
            if ((first = s.try_coordinator(peer))) {
                break;
            }
        }
        if (!first) {
            if (Clock::now() - since > s.options.pause_limit) {
                throw Error(ErrorCode::io,
                            "no CSV coordinator answered at " + s.options.listeners.front().text() +
                                (s.options.listeners.size() > 1 ? " or the others" : ""));
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    first->epoch = ++s.epoch;
    Connection* raw = first.get();
    first->reader = std::thread([&s, raw] { s.read_loop(*raw); });
    s.conn = std::move(first);
    s.paused = false;
    s.supervisor = std::thread([&s] { s.supervise(); });
}

NodeClient::NodeClient(const std::string& address, std::uint16_t port, BlockDevice& lun,
                       std::uint64_t node_id, const std::string& node_name,
                       std::chrono::milliseconds map_lease)
    : NodeClient(
          [&] {
              NodeOptions o;
              o.listeners = {Endpoint{address, port}};
              o.node_id = node_id;
              o.node_name = node_name;
              o.map_lease = map_lease;
              o.pause_limit = std::chrono::milliseconds(0); // no failover: fail at once
              return o;
          }(),
          lun) {}

NodeClient::~NodeClient() {
    State& s = *state_;
    {
        std::lock_guard lock(s.conn_mutex);
        s.closing = true;
    }
    s.conn_cv.notify_all();
    if (s.supervisor.joinable()) {
        s.supervisor.join();
    }
    std::shared_ptr<Connection> c;
    {
        std::lock_guard lock(s.conn_mutex);
        c = std::move(s.conn);
    }
    if (c) {
        c->kill();
        if (c->reader.joinable()) {
            c->reader.join();
        }
    }
}

namespace {
NodeEntry entry_of(const pb::FileReply& f) {
    return NodeEntry{f.name(),      f.inode(),         f.size(),
                     f.directory(), f.mtime_unix_ns(), f.allocated_blocks(),
                     f.flags()};
}
} // namespace

// Retried requests (docs/csv-protocol.md "retry after a coordinator change"): the first
// attempt may have taken effect before the old coordinator died, so a retry that finds the
// result already there reports success.
void NodeClient::create(const std::string& path, std::uint64_t size) {
    int builds = 0;
    try {
        state_->call([&](pb::NodeMessage& m) {
            ++builds;
            m.mutable_create()->set_path(path);
            m.mutable_create()->set_size(size);
        });
    } catch (const Error& e) {
        if (e.code() != ErrorCode::conflict || builds < 2) {
            throw;
        }
        NodeEntry existing = stat(path); // a retry finding the file it created is fine
        if (existing.directory || existing.size != size) {
            throw;
        }
    }
}

void NodeClient::make_directory(const std::string& path) {
    int builds = 0;
    try {
        state_->call([&](pb::NodeMessage& m) {
            ++builds;
            m.mutable_mkdir()->set_path(path);
        });
    } catch (const Error& e) {
        if (e.code() != ErrorCode::conflict || builds < 2 || !stat(path).directory) {
            throw;
        }
    }
}

void NodeClient::remove(const std::string& path) {
    int builds = 0;
    try {
        state_->call([&](pb::NodeMessage& m) {
            ++builds;
            m.mutable_remove()->set_path(path);
        });
    } catch (const Error& e) {
        if (e.code() != ErrorCode::not_found || builds < 2) {
            throw;
        }
    }
}

void NodeClient::rename(const std::string& from, const std::string& to) {
    bool retried = false;
    int builds = 0;
    try {
        state_->call([&](pb::NodeMessage& m) {
            retried = ++builds > 1;
            m.mutable_rename()->set_from(from);
            m.mutable_rename()->set_to(to);
        });
    } catch (const Error& e) {
        if (e.code() != ErrorCode::not_found || !retried) {
            throw;
        }
        stat(to); // the first attempt moved it: `to` exists (throws not_found otherwise)
    }
}

NodeEntry NodeClient::stat(const std::string& path) {
    return entry_of(
        state_->call([&](pb::NodeMessage& m) { m.mutable_stat()->set_path(path); }).message.file());
}

std::vector<NodeEntry> NodeClient::list(const std::string& directory) {
    std::vector<NodeEntry> out;
    const auto r = state_->call([&](pb::NodeMessage& m) { m.mutable_list()->set_path(directory); });
    for (const auto& f : r.message.list().entries()) {
        out.push_back(entry_of(f));
    }
    return out;
}

std::uint64_t NodeClient::open(const std::string& path) {
    State& s = *state_;
    for (;;) {
        auto r = s.call([&](pb::NodeMessage& m) { m.mutable_open()->set_path(path); });
        auto f = std::make_shared<NodeFile>();
        f->remote = r.message.file().handle();
        f->inode = r.message.file().inode();
        f->generation = r.message.file().generation();
        f->size = r.message.file().size();
        std::lock_guard lock(s.files_mutex);
        if (r.epoch != s.epoch) {
            continue; // opened at a coordinator that is gone, and not re-opened: again
        }
        const std::uint64_t handle = s.next_handle++;
        s.files[handle] = f;
        return handle;
    }
}

void NodeClient::close(std::uint64_t handle) {
    State& s = *state_;
    auto f = s.file(handle);
    {
        std::unique_lock lock(f->io);
        f->map.reset();
    }
    try {
        s.call([&](pb::NodeMessage& m) { m.mutable_close()->set_handle(s.remote_of(*f)); });
    } catch (const Error& e) {
        // After a coordinator change the file may already be closed there.
        if (e.code() != ErrorCode::usage) {
            throw;
        }
    }
    std::lock_guard lock(s.files_mutex);
    s.files.erase(handle);
}

void NodeClient::resize(std::uint64_t handle, std::uint64_t size) {
    State& s = *state_;
    auto f = s.file(handle);
    {
        std::unique_lock lock(f->io); // our own map goes before we ask for the change
        f->map.reset();
    }
    auto r = s.call([&](pb::NodeMessage& m) {
        m.mutable_resize()->set_handle(s.remote_of(*f));
        m.mutable_resize()->set_size(size);
    });
    std::unique_lock lock(f->io);
    f->size = r.message.file().size();
}

std::uint64_t NodeClient::size(std::uint64_t handle) {
    auto f = state_->file(handle);
    std::shared_lock lock(f->io);
    return f->size;
}

void NodeClient::write(std::uint64_t handle, std::uint64_t offset,
                       std::span<const std::byte> data) {
    State& s = *state_;
    auto f = s.file(handle);
    const std::uint64_t end = offset + data.size();
    {
        std::shared_lock lock(f->io);
        if (end > f->size) {
            lock.unlock();
            resize(handle, end);
        }
    }
    for (;;) {
        if (s.path_lost) {
            s.redirected_write(*f, offset, data);
            return;
        }
        bool lost = false;
        bool copy = false;
        {
            std::shared_lock lock(f->io);
            if (s.map_usable(*f, end)) {
                if (State::shares(*f->map, offset, end)) {
                    copy = true;
                } else {
                    try {
                        s.transfer(*f->map, offset, const_cast<std::byte*>(data.data()),
                                   data.size(), true);
                        return;
                    } catch (const PathLost&) {
                        lost = true;
                    }
                }
            }
        }
        if (lost) {
            s.lose_path(); // the whole write again, through the coordinator
            continue;
        }
        if (copy) {
            // Copy-on-write: our map goes, the coordinator gives the file its own blocks.
            {
                std::unique_lock lock(f->io);
                f->map.reset();
            }
            s.call([&](pb::NodeMessage& m) {
                m.mutable_break_sharing()->set_handle(s.remote_of(*f));
                m.mutable_break_sharing()->set_offset(offset);
                m.mutable_break_sharing()->set_length(data.size());
            });
            ++s.copies;
        }
        s.fetch_map(*f);
    }
}

std::size_t NodeClient::read(std::uint64_t handle, std::uint64_t offset, std::span<std::byte> out) {
    State& s = *state_;
    auto f = s.file(handle);
    for (;;) {
        if (s.path_lost) {
            return s.redirected_read(*f, offset, out);
        }
        bool lost = false;
        {
            std::shared_lock lock(f->io);
            if (s.map_usable(*f, 0)) {
                if (offset >= f->map->size()) {
                    return 0;
                }
                const std::size_t n = static_cast<std::size_t>(
                    std::min<std::uint64_t>(out.size(), f->map->size() - offset));
                try {
                    s.transfer(*f->map, offset, out.data(), n, false);
                    return n;
                } catch (const PathLost&) {
                    lost = true;
                }
            }
        }
        if (lost) {
            s.lose_path();
            continue;
        }
        s.fetch_map(*f);
    }
}

void NodeClient::flush() {
    State& s = *state_;
    if (!s.path_lost) {
        try {
            s.lun.flush();
            // Writes redirected before the path came back went through the coordinator.
            if (s.unflushed_redirected == 0) {
                return;
            }
        } catch (const Error&) {
            s.lose_path();
        }
    }
    const std::uint64_t covered = s.unflushed_redirected; // writes after this load wait
    s.call([](pb::NodeMessage& m) { m.mutable_flush_data(); });
    s.unflushed_redirected -= covered;
}

NodeEntry NodeClient::snapshot(const std::string& name) {
    int builds = 0;
    try {
        auto r = state_->call([&](pb::NodeMessage& m) {
            ++builds;
            m.mutable_snapshot()->set_op(pb::SnapshotRequest::CREATE);
            m.mutable_snapshot()->set_name(name);
        });
        return entry_of(r.message.file());
    } catch (const Error& e) {
        if (e.code() != ErrorCode::conflict || builds < 2) {
            throw;
        }
        // A retry after a coordinator change may find the snapshot the first attempt took.
        for (const NodeEntry& existing : snapshots()) {
            if (existing.name == name && (existing.flags & inode_snapshot_pending) == 0) {
                return existing;
            }
        }
        throw;
    }
}

void NodeClient::release_snapshot(const std::string& name) {
    state_->call([&](pb::NodeMessage& m) {
        m.mutable_snapshot()->set_op(pb::SnapshotRequest::RELEASE);
        m.mutable_snapshot()->set_name(name);
    });
}

std::vector<NodeEntry> NodeClient::snapshots() {
    std::vector<NodeEntry> out;
    const auto r = state_->call(
        [&](pb::NodeMessage& m) { m.mutable_snapshot()->set_op(pb::SnapshotRequest::LIST); });
    for (const auto& f : r.message.list().entries()) {
        out.push_back(entry_of(f));
    }
    return out;
}

std::uint64_t NodeClient::copies_requested() const {
    return state_->copies;
}

IoState NodeClient::state() const {
    return state_->io_state();
}
std::uint64_t NodeClient::revocations_received() const {
    return state_->revocations;
}
std::uint64_t NodeClient::maps_fetched() const {
    return state_->maps;
}
std::uint64_t NodeClient::reconnections() const {
    return state_->reconnects;
}
std::uint64_t NodeClient::redirected_bytes() const {
    return state_->redirected;
}
std::chrono::milliseconds NodeClient::longest_pause() const {
    return std::chrono::milliseconds(state_->longest_pause_ms.load());
}

} // namespace godwit::csv
