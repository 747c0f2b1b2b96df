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
#include "godwit/csv/framing.hpp"
#include "godwit/error.hpp"

namespace godwit::csv {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
namespace pb = godwit::csv::protocol;

struct Session {
    explicit Session(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    std::mutex write_mutex;
    std::uint64_t node_id = 0;
    std::map<std::uint64_t, FileHandle> handles; // by handle id (this session's thread only)
    std::thread thread;

    void send(const pb::CoordinatorMessage& m) {
        std::lock_guard lock(write_mutex);
        send_frame(socket, m);
    }
};

struct MapLease {
    Session* session = nullptr;
    std::uint64_t inode = 0;
};

struct Coordinator::State {
    Volume& volume;
    std::chrono::milliseconds map_lease;
    asio::io_context io;
    tcp::acceptor acceptor{io};
    std::atomic<bool> stopping{false};
    std::thread heartbeat;
    std::mutex stop_mutex;
    std::condition_variable stop_cv;
    std::atomic<std::uint64_t> revocations{0};

    std::mutex volume_mutex; // never held while waiting for a node

    std::mutex sessions_mutex;
    std::list<std::unique_ptr<Session>> sessions;

    std::mutex lease_mutex;
    std::condition_variable lease_cv;
    std::uint64_t next_lease = 1;
    std::map<std::uint64_t, MapLease> leases;
    std::set<std::uint64_t> awaiting_ack;
    std::set<std::uint64_t> revoking; // inodes whose map is being changed

    explicit State(Volume& v, std::chrono::milliseconds lease) : volume(v), map_lease(lease) {}

    // Keeps the on-disk coordinator lease alive (a third of its duration apart).
    void heartbeat_loop() {
        const auto interval =
            std::chrono::milliseconds(std::max(1u, volume.lease_duration_ms() / 3));
        std::unique_lock lock(stop_mutex);
        while (!stop_cv.wait_for(lock, interval, [&] { return stopping.load(); })) {
            try {
                std::lock_guard volume_lock(volume_mutex);
                volume.heartbeat();
            } catch (const Error& e) {
                spdlog::error("csv coordinator: heartbeat failed: {}", e.what());
            }
        }
    }

    // Takes every map lease on `inode` back (the requester's own are simply dropped).
    void revoke_inode(std::uint64_t inode, Session* requester) {
        std::vector<std::pair<std::uint64_t, Session*>> targets;
        {
            std::unique_lock lock(lease_mutex);
            revoking.insert(inode);
            for (auto it = leases.begin(); it != leases.end();) {
                if (it->second.inode != inode) {
                    ++it;
                } else if (it->second.session == requester) {
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
        lease_cv.wait_for(lock, map_lease + std::chrono::milliseconds(200), [&] {
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
        revoking.erase(inode);
    }

    void drop_session_leases(Session* session) {
        std::lock_guard lock(lease_mutex);
        for (auto it = leases.begin(); it != leases.end();) {
            if (it->second.session == session) {
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
    }

    const FileHandle& handle_of(Session& s, std::uint64_t id) {
        auto it = s.handles.find(id);
        if (it == s.handles.end()) {
            throw Error(ErrorCode::usage, "unknown file handle " + std::to_string(id));
        }
        return it->second;
    }

    pb::CoordinatorMessage handle(Session& s, const pb::NodeMessage& request) {
        pb::CoordinatorMessage reply;
        reply.set_request_id(request.request_id());
        switch (request.body_case()) {
        case pb::NodeMessage::kRegisterNode:
            s.node_id = request.register_node().node_id();
            spdlog::info("csv coordinator: node {} ({}) registered", s.node_id,
                         request.register_node().node_name());
            reply.set_ok(true);
            break;
        case pb::NodeMessage::kCreate: {
            std::lock_guard lock(volume_mutex);
            fill_file(reply.mutable_file(), 0,
                      volume.create_file(request.create().path(), request.create().size()));
            break;
        }
        case pb::NodeMessage::kMkdir: {
            std::lock_guard lock(volume_mutex);
            fill_file(reply.mutable_file(), 0, volume.make_directory(request.mkdir().path()));
            break;
        }
        case pb::NodeMessage::kRemove: {
            // Open files cannot be removed, so no node holds a map of what goes away.
            std::lock_guard lock(volume_mutex);
            volume.remove(request.remove().path());
            reply.set_ok(true);
            break;
        }
        case pb::NodeMessage::kRename: {
            std::lock_guard lock(volume_mutex);
            volume.rename(request.rename().from(), request.rename().to());
            reply.set_ok(true);
            break;
        }
        case pb::NodeMessage::kStat: {
            std::lock_guard lock(volume_mutex);
            fill_file(reply.mutable_file(), 0, volume.stat(request.stat().path()));
            break;
        }
        case pb::NodeMessage::kList: {
            std::lock_guard lock(volume_mutex);
            auto* list = reply.mutable_list();
            for (const FileInfo& fi : volume.list(request.list().path())) {
                fill_file(list->add_entries(), 0, fi);
            }
            break;
        }
        case pb::NodeMessage::kOpen: {
            std::lock_guard lock(volume_mutex);
            FileHandle h = volume.open(request.open().path());
            s.handles[h.id] = h;
            FileInfo fi = volume.stat(request.open().path());
            fill_file(reply.mutable_file(), h.id, fi);
            break;
        }
        case pb::NodeMessage::kClose: {
            FileHandle h = handle_of(s, request.close().handle());
            {
                std::lock_guard lock(lease_mutex);
                for (auto it = leases.begin(); it != leases.end();) {
                    it = it->second.session == &s && it->second.inode == h.inode ? leases.erase(it)
                                                                                 : std::next(it);
                }
            }
            std::lock_guard lock(volume_mutex);
            volume.close(h);
            s.handles.erase(h.id);
            reply.set_ok(true);
            break;
        }
        case pb::NodeMessage::kResize: {
            FileHandle h = handle_of(s, request.resize().handle());
            revoke_inode(h.inode, &s);
            std::lock_guard lock(volume_mutex);
            volume.resize(h, request.resize().size());
            auto map = volume.block_map(h, 0, 0);
            FileInfo fi;
            fi.inode = h.inode;
            fi.generation = map.generation;
            fi.size = map.size;
            fill_file(reply.mutable_file(), h.id, fi);
            break;
        }
        case pb::NodeMessage::kMap: {
            FileHandle h = handle_of(s, request.map().handle());
            std::uint64_t lease_id = 0;
            {
                std::lock_guard lock(lease_mutex);
                if (revoking.count(h.inode)) {
                    throw Error(ErrorCode::conflict, "the file's map is changing: retry");
                }
                lease_id = next_lease++;
                leases[lease_id] = {&s, h.inode};
            }
            std::lock_guard lock(volume_mutex);
            BlockMap map = volume.block_map(h, request.map().offset(), request.map().length());
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
            }
            break;
        }
        default:
            throw Error(ErrorCode::protocol, "unexpected message from a node");
        }
        return reply;
    }

    void serve(Session& s) {
        try {
            pb::NodeMessage request;
            while (!stopping && receive_frame(s.socket, request)) {
                if (request.has_revoke_ack()) {
                    std::lock_guard lock(lease_mutex);
                    awaiting_ack.erase(request.revoke_ack().lease_id());
                    lease_cv.notify_all();
                    continue;
                }
                pb::CoordinatorMessage reply;
                try {
                    reply = handle(s, request);
                } catch (const Error& e) {
                    reply.Clear();
                    reply.set_request_id(request.request_id());
                    reply.mutable_error()->set_code(static_cast<int>(e.code()));
                    reply.mutable_error()->set_message(e.what());
                }
                s.send(reply);
            }
        } catch (const std::exception& e) {
            if (!stopping) {
                spdlog::warn("csv coordinator: node {} disconnected: {}", s.node_id, e.what());
            }
        }
        drop_session_leases(&s);
        std::lock_guard lock(volume_mutex);
        for (auto& [id, h] : s.handles) {
            try {
                volume.close(h);
            } catch (const Error&) {
            }
        }
        s.handles.clear();
    }
};

Coordinator::Coordinator(Volume& volume, const std::string& address, std::uint16_t port,
                         std::chrono::milliseconds map_lease)
    : state_(std::make_unique<State>(volume, map_lease)) {
    tcp::endpoint endpoint(asio::ip::make_address(address), port);
    state_->acceptor.open(endpoint.protocol());
    state_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    state_->acceptor.bind(endpoint);
    state_->acceptor.listen();
    state_->heartbeat = std::thread([st = state_.get()] { st->heartbeat_loop(); });
}

Coordinator::~Coordinator() {
    stop();
}

std::uint16_t Coordinator::port() const {
    return state_->acceptor.local_endpoint().port();
}

std::uint64_t Coordinator::revocations_sent() const {
    return state_->revocations;
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
        auto& session = st.sessions.emplace_back(std::make_unique<Session>(std::move(socket)));
        Session* raw = session.get();
        session->thread = std::thread([&st, raw] { st.serve(*raw); });
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
    if (st.heartbeat.joinable()) {
        st.heartbeat.join();
    }
    boost::system::error_code ec;
    st.acceptor.cancel(ec);
    ::shutdown(st.acceptor.native_handle(), SHUT_RDWR); // wakes a blocking accept
    st.acceptor.close(ec);
    std::lock_guard lock(st.sessions_mutex);
    for (auto& s : st.sessions) {
        s->socket.shutdown(tcp::socket::shutdown_both, ec);
    }
    for (auto& s : st.sessions) {
        if (s->thread.joinable()) {
            s->thread.join();
        }
    }
}

} // namespace godwit::csv
