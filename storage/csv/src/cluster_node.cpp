#include "godwit/csv/cluster_node.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "csv_protocol.pb.h"
#include "godwit/csv/journal.hpp"
#include "godwit/csv/lease.hpp"
#include "godwit/error.hpp"

namespace godwit::csv {

namespace pb = godwit::csv::protocol;
using Clock = std::chrono::steady_clock;

struct ClusterNode::State {
    ClusterNodeOptions options;
    PosixBlockDevice meta; // the coordinator's volume and the lease watcher
    PosixBlockDevice data; // the node client's direct I/O (its path can fail on its own)
    std::uint64_t lease_block = 1;
    TlsContext tls;

    std::unique_ptr<Coordinator> service;
    std::thread service_thread;

    mutable std::mutex takeover_mutex;
    std::unique_ptr<Volume> volume; // while this node coordinates

    std::mutex client_mutex;
    std::unique_ptr<NodeClient> client;

    std::thread watcher;
    std::mutex stop_mutex;
    std::condition_variable stop_cv;
    bool stopping = false;
    std::atomic<std::uint64_t> takeovers{0};
    std::atomic<std::uint64_t> fenced{0};

    explicit State(ClusterNodeOptions o)
        : options(std::move(o)),
          meta(options.lun_path, PosixBlockDevice::Access::read_write, options.direct),
          data(options.lun_path, PosixBlockDevice::Access::read_write, options.direct) {
        Block sb_block = read_block(meta, 0);
        validate_block(sb_block, BlockKind::superblock, 0);
        lease_block = load<Superblock>(sb_block).lease_block;
        if (!options.plaintext) {
            tls = make_tls_context(options.tls);
        }
    }

    MountOptions mount_options(bool failover) const {
        MountOptions o;
        o.identity = options.identity;
        o.lease.lease_duration_ms = options.lease_duration_ms;
        if (failover) {
            // The watcher saw the heartbeat stand still for a whole duration already.
            o.lease.force = true;
            o.lease.settle_ms = std::min<std::uint32_t>(250, options.lease_duration_ms / 4);
        }
        return o;
    }

    // Planned move: the old coordinator wrote the lease over to this node.
    void take_over_planned(std::uint64_t generation) {
        std::lock_guard lock(takeover_mutex);
        if (volume) {
            return;
        }
        const LeaseBlock lease = read_lease(meta, lease_block);
        if (lease.owner_node_id != options.identity.node_id || lease.generation != generation) {
            throw Error(ErrorCode::conflict, "the lease does not name this node at generation " +
                                                 std::to_string(generation));
        }
        volume = Volume::mount(meta, mount_options(false));
        service->promote(*volume, false);
    }

    // Failover: the coordinator's heartbeat stopped. Mounting replays the journal.
    void take_over_failover() {
        std::lock_guard lock(takeover_mutex);
        if (volume) {
            return;
        }
        try {
            volume = Volume::mount(meta, mount_options(true));
        } catch (const Error& e) {
            spdlog::info("csv node {}: takeover lost: {}", options.identity.node_id, e.what());
            return;
        }
        ++takeovers;
        spdlog::warn("csv node {}: took the volume over (generation {}, replayed seq {})",
                     options.identity.node_id, volume->lease_generation(), volume->replayed_seq());
        service->promote(*volume, true);
    }

    void on_demoted(bool was_fenced) {
        std::lock_guard lock(takeover_mutex);
        volume.reset(); // unmounted (handed over) or fenced: nothing more is written
        if (was_fenced) {
            ++fenced;
        }
    }

    void describe(pb::NodeStatus& status) {
        {
            std::lock_guard lock(client_mutex);
            const IoState state = client ? client->state() : IoState::paused;
            status.set_state(state == IoState::direct       ? pb::DIRECT
                             : state == IoState::redirected ? pb::REDIRECTED
                                                            : pb::PAUSED);
            status.set_connected(client && state != IoState::paused);
            status.set_redirected_bytes(client ? client->redirected_bytes() : 0);
        }
        try {
            const LeaseBlock lease = read_lease(meta, lease_block);
            status.set_lease_generation(lease.generation);
            status.set_coordinator_node_id(
                lease.state == static_cast<std::uint32_t>(LeaseState::held) ? lease.owner_node_id
                                                                            : 0);
        } catch (const Error&) {
            // No path to the LUN: the lease is not known here.
        }
    }

    static bool same(const LeaseBlock& a, const LeaseBlock& b) {
        return a.generation == b.generation && a.heartbeat_counter == b.heartbeat_counter &&
               a.owner_node_id == b.owner_node_id && a.state == b.state;
    }

    // Watches the lease; takes the volume over once the heartbeat stood still for a lease
    // duration plus a per-node stagger (so the standbys do not all race for it).
    void watch() {
        const auto interval =
            std::chrono::milliseconds(std::max<std::uint32_t>(20, options.lease_duration_ms / 5));
        const auto stagger =
            std::chrono::milliseconds(std::max<std::uint32_t>(50, options.lease_duration_ms / 4) *
                                      (options.identity.node_id % 8));
        LeaseBlock last{};
        bool have = false;
        auto changed = Clock::now();
        std::unique_lock lock(stop_mutex);
        while (!stop_cv.wait_for(lock, interval, [&] { return stopping; })) {
            {
                std::lock_guard takeover_lock(takeover_mutex);
                if (volume) {
                    have = false;
                    continue;
                }
            }
            LeaseBlock lease{};
            try {
                lease = read_lease(meta, lease_block);
            } catch (const Error&) {
                have = false; // without the LUN this node cannot coordinate
                continue;
            }
            if (!have || !same(lease, last)) {
                last = lease;
                have = true;
                changed = Clock::now();
                continue;
            }
            const auto duration = std::chrono::milliseconds(
                std::max(lease.lease_duration_ms, options.lease_duration_ms));
            if (Clock::now() - changed > duration + stagger) {
                lock.unlock();
                take_over_failover();
                lock.lock();
                have = false;
            }
        }
    }
};

ClusterNode::ClusterNode(ClusterNodeOptions options)
    : state_(std::make_unique<State>(std::move(options))) {
    State& s = *state_;
    auto self = s.options.members.find(s.options.identity.node_id);
    if (self == s.options.members.end()) {
        throw Error(ErrorCode::usage, "node " + std::to_string(s.options.identity.node_id) +
                                          " is not in the cluster's membership");
    }
    ServiceOptions so;
    so.address = self->second.address;
    so.port = self->second.port;
    so.map_lease = s.options.map_lease;
    so.tls = s.tls;
    so.identity = s.options.identity;
    so.peers = s.options.members;
    so.describe = [&s](pb::NodeStatus& status) { s.describe(status); };
    so.take_over = [&s](std::uint64_t generation) { s.take_over_planned(generation); };
    so.demoted = [&s](bool was_fenced) { s.on_demoted(was_fenced); };
    s.service = std::make_unique<Coordinator>(std::move(so));
    s.service_thread = std::thread([&s] {
        try {
            s.service->run();
        } catch (const std::exception& e) {
            spdlog::error("csv node {}: listener failed: {}", s.options.identity.node_id, e.what());
        }
    });
    if (s.options.coordinator) {
        std::lock_guard lock(s.takeover_mutex);
        try {
            s.volume = Volume::mount(s.meta, s.mount_options(false));
        } catch (...) {
            s.service->stop();
            s.service_thread.join();
            throw;
        }
        s.service->promote(*s.volume, false);
    }
    if (s.options.standby) {
        s.watcher = std::thread([&s] { s.watch(); });
    }
}

ClusterNode::~ClusterNode() {
    State& s = *state_;
    {
        std::lock_guard lock(s.stop_mutex);
        s.stopping = true;
    }
    s.stop_cv.notify_all();
    if (s.watcher.joinable()) {
        s.watcher.join();
    }
    {
        std::lock_guard lock(s.client_mutex);
        s.client.reset();
    }
    s.service->stop();
    if (s.service_thread.joinable()) {
        s.service_thread.join();
    }
    std::lock_guard lock(s.takeover_mutex);
    s.volume.reset(); // clean unmount: backup superblock, lease released
}

void ClusterNode::join() {
    State& s = *state_;
    NodeOptions o;
    for (auto& [id, endpoint] : s.options.members) {
        o.listeners.push_back(endpoint);
    }
    o.node_id = s.options.identity.node_id;
    o.node_name = s.options.identity.node_name;
    o.map_lease = s.options.map_lease;
    o.tls = s.tls;
    o.call_timeout = s.options.call_timeout;
    o.pause_limit = s.options.pause_limit;
    auto client = std::make_unique<NodeClient>(o, s.data);
    std::lock_guard lock(s.client_mutex);
    s.client = std::move(client);
}

NodeClient& ClusterNode::client() {
    std::lock_guard lock(state_->client_mutex);
    if (!state_->client) {
        throw Error(ErrorCode::usage, "the CSV node has not joined its cluster");
    }
    return *state_->client;
}

bool ClusterNode::coordinating() const {
    std::lock_guard lock(state_->takeover_mutex);
    return state_->volume != nullptr;
}

std::uint64_t ClusterNode::takeovers() const {
    return state_->takeovers;
}

std::uint64_t ClusterNode::fenced() const {
    return state_->fenced;
}

PosixBlockDevice& ClusterNode::data_path() {
    return state_->data;
}

std::uint64_t request_coordinator(const std::vector<Endpoint>& listeners, const TlsContext& tls,
                                  const pb::NodeMessage& request, pb::CoordinatorMessage& reply,
                                  std::chrono::milliseconds timeout, const std::string& label) {
    std::string why = "no node answered";
    for (const Endpoint& peer : listeners) {
        pb::NodeMessage ask;
        ask.mutable_status();
        pb::CoordinatorMessage status;
        try {
            request_once(peer, tls, ask, status, timeout);
        } catch (const Error& e) {
            why = e.what();
            continue;
        }
        if (!status.has_status() || !status.status().coordinator()) {
            why = "no node is coordinating the volume";
            continue;
        }
        if (!label.empty() && status.status().volume_label() != label) {
            throw Error(ErrorCode::not_found, "the cluster coordinates volume '" +
                                                  status.status().volume_label() + "', not '" +
                                                  label + "'");
        }
        request_once(peer, tls, request, reply, timeout);
        return status.status().node_id();
    }
    throw Error(ErrorCode::not_found, why);
}

std::uint64_t request_move(const std::vector<Endpoint>& listeners, const TlsContext& tls,
                           std::uint64_t target, std::chrono::milliseconds timeout,
                           const std::string& label) {
    pb::NodeMessage move;
    move.mutable_move()->set_target_node_id(target);
    pb::CoordinatorMessage reply;
    std::uint64_t from = 0;
    try {
        from = request_coordinator(listeners, tls, move, reply, timeout, label);
    } catch (const Error& e) {
        if (e.code() != ErrorCode::not_found) {
            throw;
        }
        throw Error(ErrorCode::not_found, std::string("cannot move the coordinator: ") + e.what());
    }
    if (reply.has_error()) {
        throw Error(static_cast<ErrorCode>(reply.error().code()), "move refused by node " +
                                                                      std::to_string(from) + ": " +
                                                                      reply.error().message());
    }
    return from;
}

} // namespace godwit::csv
