// One node of a cluster shared volume (docs/csv-protocol.md): its listener (standby or
// coordinator), its node client (data I/O on the LUN, metadata through the coordinator) and
// a lease watcher that takes the volume over when the coordinator's on-disk heartbeat stops.
//
// Membership is static: every node knows every node's id and listener. Liveness is the
// on-disk lease (heartbeat + generation), not the network: a node cut off from the others
// but still on the LUN sees a live coordinator and never takes over, and a coordinator cut
// off from the LUN or stopped finds its lease taken and is fenced.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "godwit/csv/block_device.hpp"
#include "godwit/csv/coordinator.hpp"
#include "godwit/csv/node_client.hpp"
#include "godwit/csv/volume.hpp"

namespace godwit::csv::protocol {
class NodeMessage;
class CoordinatorMessage;
} // namespace godwit::csv::protocol

namespace godwit::csv {

struct ClusterNodeOptions {
    std::string lun_path; // this node's path to the LUN (a per-node symlink in tests)
    bool direct = true;   // O_DIRECT
    LeaseIdentity identity;
    std::map<std::uint64_t, Endpoint> members; // every node's listener, this one included
    TlsOptions tls;                            // the cluster CA, this node's certificate and key
    bool plaintext = false; // no TLS: only when explicitly asked for (tls is then ignored)
    std::chrono::milliseconds map_lease{3000};
    std::uint32_t lease_duration_ms = 10000;
    std::chrono::milliseconds call_timeout{30000};
    std::chrono::milliseconds pause_limit{120000};
    bool coordinator = false; // mount the volume at start (the first coordinator)
    bool standby = true;      // take the volume over when its lease expires
};

class ClusterNode {
  public:
    // Listens on members[identity.node_id]; mounts the volume when `coordinator`.
    explicit ClusterNode(ClusterNodeOptions options);
    ~ClusterNode();
    ClusterNode(const ClusterNode&) = delete;
    ClusterNode& operator=(const ClusterNode&) = delete;

    // Starts the node client (finds the coordinator). Separate from construction so all
    // listeners of a cluster can be up before any node looks for the coordinator.
    void join();
    NodeClient& client();
    bool coordinating() const;
    std::uint64_t takeovers() const; // failovers this node won
    std::uint64_t fenced() const;    // times this node found its lease taken
    PosixBlockDevice& data_path();   // the node client's LUN (tests sever it)

    struct State;

  private:
    std::unique_ptr<State> state_;
};

// Sends `request` to whichever listener coordinates the volume (asked by status first);
// returns that node's id. Error(not_found) when none answers as coordinator, or when
// `label` is given and the coordinator serves a volume with another label.
std::uint64_t request_coordinator(const std::vector<Endpoint>& listeners, const TlsContext& tls,
                                  const protocol::NodeMessage& request,
                                  protocol::CoordinatorMessage& reply,
                                  std::chrono::milliseconds timeout, const std::string& label = "");

// Planned move through any listener of the cluster: finds the coordinator and asks it to
// hand the volume to `target` (refused when `label` is given and not the volume's). Returns
// the coordinator it moved from.
std::uint64_t request_move(const std::vector<Endpoint>& listeners, const TlsContext& tls,
                           std::uint64_t target, std::chrono::milliseconds timeout,
                           const std::string& label = "");

} // namespace godwit::csv
