// The CSV coordinator service (docs/csv-protocol.md). Every node of a cluster runs one: as a
// **standby** it answers only status requests and a planned hand-over (TakeOver); once it
// holds the on-disk lease it is **promoted** with the mounted Volume and serves nodes over TCP
// (csv_protocol.proto): namespace operations, open/close/resize, block maps, and the data
// I/O of nodes in redirected mode.
//
// Block-map leases: every map handed to a node is a lease. Before a change to a file's map
// (resize) the coordinator sends Revoke to every other holder and waits for RevokeAck — or
// for the map lease duration, after which a node stops using the map by itself — so no node
// ever writes to blocks that were reallocated. A coordinator promoted by failover does not
// know the maps its dead predecessor handed out: it waits one map-lease duration (the grace)
// before its first map change. A coordinator that finds its lease taken (its heartbeat
// fails with conflict) demotes itself at once: it is fenced and writes no more metadata.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "godwit/csv/channel.hpp"
#include "godwit/csv/volume.hpp"

namespace godwit::csv::protocol {
class NodeStatus;
}

namespace godwit::csv {

struct ServiceOptions {
    std::string address = "127.0.0.1";
    std::uint16_t port = 0; // 0 picks a free one
    std::chrono::milliseconds map_lease{3000};
    TlsContext tls;                          // null: plaintext (only when asked for)
    LeaseIdentity identity;                  // this node
    std::map<std::uint64_t, Endpoint> peers; // node id -> listener (for planned moves)
    // Fills this node's own part of a status reply (I/O state, lease as seen).
    std::function<void(protocol::NodeStatus&)> describe;
    // A hand-over names this node: mount the volume and call promote(); throws on failure.
    std::function<void(std::uint64_t generation)> take_over;
    // Called (from a service thread) after the service stopped coordinating: handed over
    // or fenced. The Volume may be unmounted/destroyed from here on.
    std::function<void(bool fenced)> demoted;
};

class Coordinator {
  public:
    // A standby listener (promote() makes it the coordinator).
    explicit Coordinator(ServiceOptions options);
    // Coordinator of `volume` at once, plaintext (a single-coordinator setup on one host:
    // the benchmark and the older tests).
    Coordinator(Volume& volume, const std::string& address, std::uint16_t port,
                std::chrono::milliseconds map_lease = std::chrono::seconds(3));
    ~Coordinator();
    Coordinator(const Coordinator&) = delete;
    Coordinator& operator=(const Coordinator&) = delete;

    std::uint16_t port() const;
    // Accepts and serves connections until stop() (from another thread or a signal path).
    void run();
    void stop();
    // Starts coordinating `volume` (whose lease this node now holds). With `grace`, map
    // changes wait one map-lease duration: maps the previous coordinator handed out expire.
    void promote(Volume& volume, bool grace);
    bool active() const;
    std::uint64_t revocations_sent() const;
    std::uint64_t fenced_commits() const; // metadata writes refused by the lease fence

    struct State;

  private:
    std::unique_ptr<State> state_;
};

} // namespace godwit::csv
