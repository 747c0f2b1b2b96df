#include "godwit/csv/coordinator.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <spdlog/spdlog.h>

#include "csv_protocol.pb.h"
#include "godwit/csv/channel.hpp"
#include "godwit/error.hpp"

namespace godwit::csv {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
namespace pb = godwit::csv::protocol;
using Clock = std::chrono::steady_clock;

namespace {

// Redirected I/O moves at most this much per message (frames are limited to 4 MiB).
constexpr std::uint64_t kMaxRedirectedBytes = 1 << 20;

// Thrown by a handler when this service does not (or no longer) coordinate: the node is
// told to look for the coordinator elsewhere.
struct NotCoordinator : Error {
    NotCoordinator() : Error(ErrorCode::conflict, "this node is not the coordinator") {}
};

} // namespace

struct Session : std::enable_shared_from_this<Session> {
    explicit Session(tcp::socket s) : socket(std::move(s)), fd(socket.native_handle()) {}
    tcp::socket socket; // until the channel (TLS handshake) is up
    int fd = -1;
    std::unique_ptr<Channel> channel; // set by the session thread before any request
    std::uint64_t node_id = 0;
    std::string node_name;
    bool registered = false;
    std::atomic<int> io_state{pb::DIRECT};
    std::atomic<std::uint64_t> redirected_bytes{0};
    std::map<std::uint64_t, FileHandle> handles; // by handle id (guarded by volume_mutex)
    std::thread thread;
    std::thread worker; // a snapshot being taken for this node (joined by `thread`)
    std::atomic<bool> finished{false};

    void send(const pb::CoordinatorMessage& m) { channel->send(m); }
    void disconnect() { ::shutdown(fd, SHUT_RDWR); }
};

struct MapLease {
    std::shared_ptr<Session> session;
    std::uint64_t inode = 0;
};

struct Coordinator::State {
    ServiceOptions options;
    asio::io_context io;
    tcp::acceptor acceptor{io};
    std::atomic<bool> stopping{false};
    std::thread heartbeat;
    std::mutex stop_mutex;
    std::condition_variable stop_cv;
    std::atomic<std::uint64_t> revocations{0};
    std::atomic<std::uint64_t> fenced{0};

    std::mutex volume_mutex;  // never held while waiting for a node
    Volume* volume = nullptr; // null: standby
    Clock::time_point grace_until{};
    Clock::time_point lease_ok_at{}; // last time the lease was verified ours on disk

    std::mutex sessions_mutex;
    std::list<std::shared_ptr<Session>> sessions;

    std::mutex lease_mutex;
    std::condition_variable lease_cv;
    std::uint64_t next_lease = 1;
    std::map<std::uint64_t, MapLease> leases;
    std::set<std::uint64_t> awaiting_ack;
    std::map<std::uint64_t, int> revoking; // inodes whose map is being changed (by how many)
    bool moving = false;                   // a planned move is under way: no new maps
    bool freezing = false;                 // a snapshot is being taken: no new maps

    explicit State(ServiceOptions o) : options(std::move(o)) {}

    // The volume, when this service coordinates and its lease is known to be current: a
    // standby waits a whole lease duration of unchanged heartbeat before it takes over, so
    // the lease is ours for half a duration after it was last verified. Past that (this
    // process was stopped, or starved), it is verified again before anything is served, so
    // a coordinator that was cut off never answers with stale maps or writes metadata.
    Volume& require_volume() {
        if (volume == nullptr) {
            throw NotCoordinator();
        }
        const auto valid = std::chrono::milliseconds(volume->lease_duration_ms() / 2);
        if (const auto now = Clock::now(); now - lease_ok_at > valid) {
            volume->heartbeat(); // throws FencedError once the lease moved on
            lease_ok_at = now;
        }
        return *volume;
    }

    // Stops coordinating (handed over or fenced): forget handles and maps, disconnect the
    // nodes (they find the new coordinator), tell the owner. `except` keeps the session
    // that asked for the move until its reply is out.
    // Called with volume_mutex held: from here on every request finds no volume.
    void detach_locked() {
        volume = nullptr;
        std::lock_guard sessions_lock(sessions_mutex);
        for (auto& s : sessions) {
            s->handles.clear();
        }
    }

    void demote(bool was_fenced, Session* except, bool detached = false) {
        if (!detached) {
            std::lock_guard lock(volume_mutex);
            if (volume == nullptr) {
                return;
            }
            detach_locked();
        }
        {
            std::lock_guard lock(lease_mutex);
            leases.clear();
            awaiting_ack.clear();
            moving = false;
            lease_cv.notify_all();
        }
        {
            std::lock_guard lock(sessions_mutex);
            for (auto& s : sessions) {
                if (s.get() != except && s->registered) {
                    s->disconnect();
                }
            }
        }
        spdlog::warn("csv node {}: no longer the coordinator ({})", options.identity.node_id,
                     was_fenced ? "fenced: another node holds the lease" : "handed over");
        if (options.demoted) {
            options.demoted(was_fenced);
        }
    }

    // Keeps the on-disk coordinator lease alive (a third of its duration apart); a heartbeat
    // refused by the fence demotes this service.
    void heartbeat_loop() {
        std::unique_lock lock(stop_mutex);
        for (;;) {
            std::chrono::milliseconds interval(100);
            {
                std::lock_guard volume_lock(volume_mutex);
                if (volume != nullptr) {
                    interval =
                        std::chrono::milliseconds(std::max(1u, volume->lease_duration_ms() / 3));
                }
            }
            if (stop_cv.wait_for(lock, interval, [&] { return stopping.load(); })) {
                return;
            }
            bool lost = false;
            try {
                std::lock_guard volume_lock(volume_mutex);
                if (volume != nullptr) {
                    const auto now = Clock::now();
                    volume->heartbeat();
                    lease_ok_at = now;
                }
            } catch (const FencedError& e) {
                spdlog::error("csv coordinator: {}", e.what());
                lost = true;
            } catch (const Error& e) {
                spdlog::error("csv coordinator: heartbeat failed: {}", e.what());
            }
            if (lost) {
                ++fenced;
                lock.unlock();
                demote(true, nullptr);
                lock.lock();
            }
        }
    }

    // While it lives, no node gets a map of the inode (the change it guards is under way).
    struct MapChange {
        State* state = nullptr;
        std::uint64_t inode = 0;
        MapChange(State* s, std::uint64_t i) : state(s), inode(i) {}
        MapChange(const MapChange&) = delete;
        MapChange& operator=(const MapChange&) = delete;
        ~MapChange() {
            std::lock_guard lock(state->lease_mutex);
            if (--state->revoking[inode] == 0) {
                state->revoking.erase(inode);
            }
        }
    };

    // Takes every map lease on `inode` back (the requester's own are simply dropped). No map
    // of the inode is handed out until the returned guard is gone: the caller changes the
    // map (or the blocks behind it) in between.
    [[nodiscard]] std::unique_ptr<MapChange> revoke_inode(std::uint64_t inode, Session* requester) {
        std::vector<std::pair<std::uint64_t, std::shared_ptr<Session>>> targets;
        {
            std::unique_lock lock(lease_mutex);
            // Maps the previous coordinator handed out run out by themselves.
            if (Clock::now() < grace_until) {
                lease_cv.wait_until(lock, grace_until, [&] { return stopping.load(); });
            }
            revoking[inode] += 1;
            for (auto it = leases.begin(); it != leases.end();) {
                if (it->second.inode != inode) {
                    ++it;
                } else if (it->second.session.get() == requester) {
                    it = leases.erase(it);
                } else {
                    targets.emplace_back(it->first, it->second.session);
                    awaiting_ack.insert(it->first);
                    ++it;
                }
            }
        }
        for (auto& [id, session] : targets) {
            pb::CoordinatorMessage m;
            m.mutable_revoke()->set_lease_id(id);
            m.mutable_revoke()->set_inode(inode);
            try {
                session->send(m);
                ++revocations;
            } catch (const Error& e) {
                spdlog::warn("csv coordinator: revoke to node {} failed: {}", session->node_id,
                             e.what());
            }
        }
        std::unique_lock lock(lease_mutex);
        // A node that does not answer stops using the map when its lease runs out.
        lease_cv.wait_for(lock, options.map_lease + std::chrono::milliseconds(200), [&] {
            for (auto& [id, s] : targets) {
                if (awaiting_ack.count(id)) {
                    return false;
                }
            }
            return true;
        });
        for (auto& [id, s] : targets) {
            awaiting_ack.erase(id);
            leases.erase(id);
        }
        lock.unlock();
        return std::make_unique<MapChange>(this, inode);
    }

    void drop_session_leases(Session* session) {
        std::lock_guard lock(lease_mutex);
        for (auto it = leases.begin(); it != leases.end();) {
            if (it->second.session.get() == session) {
                awaiting_ack.erase(it->first);
                it = leases.erase(it);
            } else {
                ++it;
            }
        }
        lease_cv.notify_all();
    }

    static void fill_file(pb::FileReply* reply, std::uint64_t handle, const FileInfo& fi) {
        reply->set_handle(handle);
        reply->set_inode(fi.inode);
        reply->set_generation(fi.generation);
        reply->set_size(fi.size);
        reply->set_directory(fi.type == InodeType::directory);
        reply->set_name(fi.name);
        reply->set_mtime_unix_ns(fi.mtime_unix_ns);
        reply->set_allocated_blocks(fi.allocated_blocks);
        reply->set_flags(fi.flags);
    }

    static const FileHandle& handle_of(Session& s, std::uint64_t id) {
        auto it = s.handles.find(id);
        if (it == s.handles.end()) {
            throw Error(ErrorCode::usage, "unknown file handle " + std::to_string(id));
        }
        return it->second;
    }

    FileHandle session_handle(Session& s, std::uint64_t id) {
        std::lock_guard lock(volume_mutex);
        require_volume();
        return handle_of(s, id);
    }

    void describe(pb::NodeStatus& status) {
        status.set_node_id(options.identity.node_id);
        status.set_node_name(options.identity.node_name);
        if (options.describe) {
            options.describe(status);
        }
        std::lock_guard lock(volume_mutex);
        status.set_coordinator(volume != nullptr);
        if (volume == nullptr) {
            return;
        }
        status.set_lease_generation(volume->lease_generation());
        status.set_coordinator_node_id(options.identity.node_id);
        const Superblock sb = volume->superblock();
        status.set_volume_label(std::string(sb.label.data(), strnlen(sb.label.data(), 64)));
        std::lock_guard sessions_lock(sessions_mutex);
        for (auto& s : sessions) {
            if (!s->registered) {
                continue;
            }
            auto* n = status.add_nodes();
            n->set_node_id(s->node_id);
            n->set_node_name(s->node_name);
            n->set_state(static_cast<pb::IoState>(s->io_state.load()));
            n->set_connected(true);
            n->set_redirected_bytes(s->redirected_bytes);
        }
    }

    // Planned move (docs/csv-protocol.md §move): no new maps, every map taken back, the
    // lease written over to the target, the target told to take over, the nodes disconnected
    // (they re-register with the target).
    void move_to(std::uint64_t target, Session& requester) {
        if (target == options.identity.node_id) {
            std::lock_guard lock(volume_mutex);
            require_volume();
            return;
        }
        auto peer = options.peers.find(target);
        if (peer == options.peers.end()) {
            throw Error(ErrorCode::not_found,
                        "no node " + std::to_string(target) + " in this cluster's membership");
        }
        std::set<std::uint64_t> inodes;
        {
            std::lock_guard lock(lease_mutex);
            if (moving) {
                throw Error(ErrorCode::conflict, "a move is already under way");
            }
            moving = true;
            for (auto& [id, lease] : leases) {
                inodes.insert(lease.inode);
            }
        }
        std::uint64_t generation = 0;
        try {
            for (std::uint64_t inode : inodes) {
                (void)revoke_inode(inode, nullptr); // `moving` keeps new maps out
            }
            std::lock_guard lock(volume_mutex);
            Volume& v = require_volume();
            generation = v.hand_over({target, "node" + std::to_string(target)});
            detach_locked(); // no request may reach the handed-over volume
        } catch (...) {
            std::lock_guard lock(lease_mutex);
            moving = false;
            throw;
        }
        spdlog::info("csv node {}: handing the volume to node {} (generation {})",
                     options.identity.node_id, target, generation);
        demote(false, &requester, true);
        pb::NodeMessage take;
        take.mutable_take_over()->set_generation(generation);
        pb::CoordinatorMessage answer;
        request_once(peer->second, options.tls, take, answer, std::chrono::seconds(20));
        if (answer.has_error()) {
            throw Error(static_cast<ErrorCode>(answer.error().code()),
                        "node " + std::to_string(target) +
                            " did not take over: " + answer.error().message() +
                            " (the lease expires and a standby takes over)");
        }
    }

    // Snapshots (docs/csv-protocol.md §9b). Taking one freezes direct data writes: no new
    // maps, every map taken back (each node acks once its in-flight I/O on the file is done),
    // then the namespace is copied under the volume mutex (redirected I/O waits on it).
    void snapshot(const pb::SnapshotRequest& request, pb::CoordinatorMessage& reply) {
        if (request.op() == pb::SnapshotRequest::LIST) {
            std::lock_guard lock(volume_mutex);
            auto* list = reply.mutable_list();
            for (const FileInfo& fi : require_volume().snapshots()) {
                fill_file(list->add_entries(), 0, fi);
            }
            return;
        }
        if (request.op() == pb::SnapshotRequest::RELEASE) {
            std::lock_guard lock(volume_mutex);
            require_volume().release_snapshot(request.name());
            spdlog::info("csv coordinator: snapshot {} released", request.name());
            reply.set_ok(true);
            return;
        }
        {
            std::lock_guard lock(volume_mutex);
            require_volume(); // a standby says so before anything is frozen
        }
        const auto start = Clock::now();
        std::set<std::uint64_t> inodes;
        {
            std::lock_guard lock(lease_mutex);
            if (moving || freezing) {
                throw Error(ErrorCode::conflict, "a move or another snapshot is under way");
            }
            freezing = true;
            for (auto& [id, lease] : leases) {
                inodes.insert(lease.inode);
            }
        }
        FileInfo fi;
        Clock::time_point frozen;
        try {
            for (std::uint64_t inode : inodes) {
                (void)revoke_inode(inode, nullptr); // `freezing` keeps new maps out
            }
            frozen = Clock::now();
            std::lock_guard lock(volume_mutex);
            fi = require_volume().create_snapshot(request.name());
        } catch (...) {
            std::lock_guard lock(lease_mutex);
            freezing = false;
            throw;
        }
        {
            std::lock_guard lock(lease_mutex);
            freezing = false;
        }
        const auto ms = [](Clock::duration d) {
            return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
        };
        spdlog::info("csv coordinator: snapshot {} taken: writes frozen {} ms ({} maps taken "
                     "back in {} ms, namespace copied in {} ms)",
                     request.name(), ms(Clock::now() - start), inodes.size(), ms(frozen - start),
                     ms(Clock::now() - frozen));
        fill_file(reply.mutable_file(), 0, fi);
    }

    pb::CoordinatorMessage handle(Session& s, const pb::NodeMessage& request) {
        pb::CoordinatorMessage reply;
        reply.set_request_id(request.request_id());
        switch (request.body_case()) {
        case pb::NodeMessage::kStatus:
            describe(*reply.mutable_status());
            return reply;
        case pb::NodeMessage::kTakeOver:
            if (!options.take_over) {
                throw Error(ErrorCode::unsupported, "this service cannot take over a volume");
            }
            options.take_over(request.take_over().generation());
            reply.set_ok(true);
            return reply;
        case pb::NodeMessage::kMove:
            move_to(request.move().target_node_id(), s);
            reply.set_ok(true);
            return reply;
        case pb::NodeMessage::kSnapshot:
            snapshot(request.snapshot(), reply);
            return reply;
        case pb::NodeMessage::kRegisterNode: {
            std::lock_guard lock(volume_mutex);
            require_volume();
            s.node_id = request.register_node().node_id();
            s.node_name = request.register_node().node_name();
            s.registered = true;
            spdlog::info("csv coordinator: node {} ({}) registered", s.node_id, s.node_name);
            reply.set_ok(true);
            return reply;
        }
        default:
            break;
        }
        if (!s.registered) {
            throw Error(ErrorCode::protocol, "register first");
        }
        switch (request.body_case()) {
        case pb::NodeMessage::kState:
            s.io_state = request.state().state();
            reply.set_ok(true);
            break;
        case pb::NodeMessage::kCreate: {
            std::lock_guard lock(volume_mutex);
            fill_file(
                reply.mutable_file(), 0,
                require_volume().create_file(request.create().path(), request.create().size()));
            break;
        }
        case pb::NodeMessage::kMkdir: {
            std::lock_guard lock(volume_mutex);
            fill_file(reply.mutable_file(), 0,
                      require_volume().make_directory(request.mkdir().path()));
            break;
        }
        case pb::NodeMessage::kRemove: {
            // Open files cannot be removed, so no node holds a map of what goes away.
            std::lock_guard lock(volume_mutex);
            require_volume().remove(request.remove().path());
            reply.set_ok(true);
            break;
        }
        case pb::NodeMessage::kRename: {
            std::lock_guard lock(volume_mutex);
            require_volume().rename(request.rename().from(), request.rename().to());
            reply.set_ok(true);
            break;
        }
        case pb::NodeMessage::kStat: {
            std::lock_guard lock(volume_mutex);
            fill_file(reply.mutable_file(), 0, require_volume().stat(request.stat().path()));
            break;
        }
        case pb::NodeMessage::kList: {
            std::lock_guard lock(volume_mutex);
            auto* list = reply.mutable_list();
            for (const FileInfo& fi : require_volume().list(request.list().path())) {
                fill_file(list->add_entries(), 0, fi);
            }
            break;
        }
        case pb::NodeMessage::kOpen: {
            std::lock_guard lock(volume_mutex);
            Volume& v = require_volume();
            FileHandle h = v.open(request.open().path());
            s.handles[h.id] = h;
            FileInfo fi = v.stat(request.open().path());
            fill_file(reply.mutable_file(), h.id, fi);
            break;
        }
        case pb::NodeMessage::kReopen: {
            std::lock_guard lock(volume_mutex);
            Volume& v = require_volume();
            FileHandle h = v.open(request.reopen().inode(), request.reopen().generation());
            s.handles[h.id] = h;
            FileInfo fi;
            fi.inode = h.inode;
            fi.generation = h.generation;
            fi.type = InodeType::file;
            fi.size = v.block_map(h, 0, 0).size;
            fill_file(reply.mutable_file(), h.id, fi);
            break;
        }
        case pb::NodeMessage::kClose: {
            FileHandle h = session_handle(s, request.close().handle());
            {
                std::lock_guard lock(lease_mutex);
                for (auto it = leases.begin(); it != leases.end();) {
                    it = it->second.session.get() == &s && it->second.inode == h.inode
                             ? leases.erase(it)
                             : std::next(it);
                }
            }
            std::lock_guard lock(volume_mutex);
            require_volume().close(h);
            s.handles.erase(h.id);
            reply.set_ok(true);
            break;
        }
        case pb::NodeMessage::kResize: {
            FileHandle h = session_handle(s, request.resize().handle());
            auto change = revoke_inode(h.inode, &s);
            std::lock_guard lock(volume_mutex);
            Volume& v = require_volume();
            v.resize(h, request.resize().size());
            auto map = v.block_map(h, 0, 0);
            FileInfo fi;
            fi.inode = h.inode;
            fi.generation = map.generation;
            fi.size = map.size;
            fill_file(reply.mutable_file(), h.id, fi);
            break;
        }
        case pb::NodeMessage::kMap: {
            FileHandle h = session_handle(s, request.map().handle());
            std::uint64_t lease_id = 0;
            {
                std::lock_guard lock(lease_mutex);
                if (revoking.count(h.inode) || moving || freezing) {
                    throw Error(ErrorCode::conflict, "the file's map is changing: retry");
                }
                lease_id = next_lease++;
                leases[lease_id] = {s.shared_from_this(), h.inode};
            }
            std::lock_guard lock(volume_mutex);
            BlockMap map =
                require_volume().block_map(h, request.map().offset(), request.map().length());
            auto* m = reply.mutable_map();
            m->set_lease_id(lease_id);
            m->set_inode(map.inode);
            m->set_generation(map.generation);
            m->set_size(map.size);
            for (const MapSegment& seg : map.segments) {
                auto* out = m->add_segments();
                out->set_file_offset(seg.file_offset);
                out->set_device_offset(seg.device_offset);
                out->set_length(seg.length);
                out->set_shared(seg.shared);
            }
            break;
        }
        case pb::NodeMessage::kBreakSharing: {
            const auto& b = request.break_sharing();
            FileHandle h = session_handle(s, b.handle());
            // The other nodes may read the shared blocks through their maps: after the copy
            // the file's data lives elsewhere, so their maps go first.
            auto change = revoke_inode(h.inode, &s);
            std::lock_guard lock(volume_mutex);
            require_volume().unshare(h, b.offset(), b.length());
            reply.set_ok(true);
            break;
        }
        case pb::NodeMessage::kRead: {
            const auto& r = request.read();
            if (r.length() > kMaxRedirectedBytes) {
                throw Error(ErrorCode::protocol, "redirected read larger than 1 MiB");
            }
            std::string data(static_cast<std::size_t>(r.length()), '\0');
            std::lock_guard lock(volume_mutex);
            Volume& v = require_volume();
            const std::size_t n = v.read(
                handle_of(s, r.handle()), r.offset(),
                std::span<std::byte>(reinterpret_cast<std::byte*>(data.data()), data.size()));
            data.resize(n);
            s.redirected_bytes += n;
            reply.mutable_data()->set_data(std::move(data));
            break;
        }
        case pb::NodeMessage::kFlushData: {
            std::lock_guard lock(volume_mutex);
            require_volume().flush();
            reply.set_ok(true);
            break;
        }
        case pb::NodeMessage::kWrite: {
            const auto& w = request.write();
            if (w.data().size() > kMaxRedirectedBytes) {
                throw Error(ErrorCode::protocol, "redirected write larger than 1 MiB");
            }
            const FileHandle h = session_handle(s, w.handle());
            const std::uint64_t end = w.offset() + w.data().size();
            // Growing the file changes its map, and so does the copy before a write to blocks
            // a snapshot shares: the other nodes' maps go first, and none is handed out until
            // the write is done (`change`). Whether either is needed is decided again under
            // the lock that writes, so a snapshot or a truncation in between is not missed.
            std::unique_ptr<MapChange> change;
            for (;;) {
                std::unique_lock lock(volume_mutex);
                Volume& v = require_volume();
                const bool grows = end > v.block_map(h, 0, 0).size;
                if (!change && (grows || v.is_shared(h, w.offset(), w.data().size()))) {
                    lock.unlock();
                    change = revoke_inode(h.inode, &s);
                    continue;
                }
                if (grows) {
                    v.resize(h, end);
                }
                v.write(h, w.offset(),
                        std::span<const std::byte>(
                            reinterpret_cast<const std::byte*>(w.data().data()), w.data().size()));
                break;
            }
            s.redirected_bytes += w.data().size();
            reply.set_ok(true);
            break;
        }
        default:
            throw Error(ErrorCode::protocol, "unexpected message from a node");
        }
        return reply;
    }

    // Handles one request and sends the reply (an error reply for a refused request; a
    // fenced coordinator demotes itself after answering).
    void answer(Session& s, const pb::NodeMessage& request) {
        pb::CoordinatorMessage reply;
        try {
            reply = handle(s, request);
        } catch (const Error& e) {
            const bool fenced_now = dynamic_cast<const FencedError*>(&e) != nullptr;
            reply.Clear();
            reply.set_request_id(request.request_id());
            reply.mutable_error()->set_code(static_cast<int>(e.code()));
            reply.mutable_error()->set_message(e.what());
            reply.mutable_error()->set_not_coordinator(
                fenced_now || dynamic_cast<const NotCoordinator*>(&e) != nullptr);
            if (fenced_now) {
                ++fenced;
                send_quietly(s, reply);
                demote(true, nullptr);
                return;
            }
        }
        send_quietly(s, reply);
    }
    // A reply to a node that went away is dropped (its session ends by itself).
    static void send_quietly(Session& s, const pb::CoordinatorMessage& reply) {
        try {
            s.send(reply);
        } catch (const std::exception& e) {
            spdlog::debug("csv coordinator: reply to node {} lost: {}", s.node_id, e.what());
        }
    }

    void serve(Session& s) {
        try {
            s.channel = std::make_unique<Channel>(std::move(s.socket), options.tls, true,
                                                  std::chrono::seconds(10));
            pb::NodeMessage request;
            while (!stopping && s.channel->receive(request)) {
                if (request.has_revoke_ack()) {
                    std::lock_guard lock(lease_mutex);
                    awaiting_ack.erase(request.revoke_ack().lease_id());
                    lease_cv.notify_all();
                    continue;
                }
                if (request.has_snapshot() &&
                    request.snapshot().op() == pb::SnapshotRequest::CREATE) {
                    // Taking a snapshot waits for every map to come back, this node's too:
                    // its acks arrive on this connection, so this thread must keep reading.
                    if (s.worker.joinable()) {
                        s.worker.join(); // the previous one answered already
                    }
                    s.worker = std::thread([this, &s, request] { answer(s, request); });
                    continue;
                }
                answer(s, request);
            }
        } catch (const std::exception& e) {
            if (!stopping) {
                spdlog::debug("csv coordinator: node {} disconnected: {}", s.node_id, e.what());
            }
        }
        if (s.worker.joinable()) {
            s.worker.join();
        }
        drop_session_leases(&s);
        std::lock_guard lock(volume_mutex);
        if (volume != nullptr) {
            for (auto& [id, h] : s.handles) {
                try {
                    volume->close(h);
                } catch (const Error&) {
                }
            }
        }
        s.handles.clear();
    }
};

Coordinator::Coordinator(ServiceOptions options)
    : state_(std::make_unique<State>(std::move(options))) {
    State& st = *state_;
    tcp::endpoint endpoint(asio::ip::make_address(st.options.address), st.options.port);
    st.acceptor.open(endpoint.protocol());
    st.acceptor.set_option(tcp::acceptor::reuse_address(true));
    st.acceptor.bind(endpoint);
    st.acceptor.listen();
    st.heartbeat = std::thread([&st] { st.heartbeat_loop(); });
}

Coordinator::Coordinator(Volume& volume, const std::string& address, std::uint16_t port,
                         std::chrono::milliseconds map_lease)
    : Coordinator([&] {
          ServiceOptions o;
          o.address = address;
          o.port = port;
          o.map_lease = map_lease;
          return o;
      }()) {
    promote(volume, false);
}

Coordinator::~Coordinator() {
    stop();
}

void Coordinator::promote(Volume& volume, bool grace) {
    State& st = *state_;
    {
        std::lock_guard lock(st.lease_mutex);
        st.grace_until = grace ? Clock::now() + st.options.map_lease : Clock::time_point{};
        st.moving = false;
    }
    std::lock_guard lock(st.volume_mutex);
    st.volume = &volume;
    st.lease_ok_at = Clock::now(); // mount just verified it
    spdlog::info("csv node {}: coordinating the volume (lease generation {}{})",
                 st.options.identity.node_id, volume.lease_generation(),
                 grace ? ", map grace" : "");
}

bool Coordinator::active() const {
    std::lock_guard lock(state_->volume_mutex);
    return state_->volume != nullptr;
}

std::uint16_t Coordinator::port() const {
    return state_->acceptor.local_endpoint().port();
}

std::uint64_t Coordinator::revocations_sent() const {
    return state_->revocations;
}

std::uint64_t Coordinator::fenced_commits() const {
    return state_->fenced;
}

void Coordinator::run() {
    State& st = *state_;
    while (!st.stopping) {
        boost::system::error_code ec;
        tcp::socket socket(st.io);
        st.acceptor.accept(socket, ec);
        if (ec) {
            if (st.stopping) {
                break;
            }
            throw Error(ErrorCode::io, "csv coordinator: accept failed: " + ec.message());
        }
        socket.set_option(tcp::no_delay(true));
        std::lock_guard lock(st.sessions_mutex);
        if (st.stopping) {
            break;
        }
        // Sessions whose thread has finished are reaped here (their socket is closed).
        for (auto it = st.sessions.begin(); it != st.sessions.end();) {
            if ((*it)->finished) {
                if ((*it)->thread.joinable()) {
                    (*it)->thread.join();
                }
                it = st.sessions.erase(it);
            } else {
                ++it;
            }
        }
        auto& session = st.sessions.emplace_back(std::make_shared<Session>(std::move(socket)));
        Session* raw = session.get();
        session->thread = std::thread([&st, raw] {
            st.serve(*raw);
            raw->finished = true; // reaped (joined, freed) at the next accept
        });
    }
}

void Coordinator::stop() {
    State& st = *state_;
    {
        std::lock_guard lock(st.stop_mutex);
        if (st.stopping.exchange(true)) {
            return;
        }
    }
    st.stop_cv.notify_all();
    st.lease_cv.notify_all();
    if (st.heartbeat.joinable()) {
        st.heartbeat.join();
    }
    boost::system::error_code ec;
    st.acceptor.cancel(ec);
    ::shutdown(st.acceptor.native_handle(), SHUT_RDWR); // wakes a blocking accept
    st.acceptor.close(ec);
    std::lock_guard lock(st.sessions_mutex);
    for (auto& s : st.sessions) {
        s->disconnect();
    }
    for (auto& s : st.sessions) {
        if (s->thread.joinable()) {
            s->thread.join();
        }
    }
}

} // namespace godwit::csv
