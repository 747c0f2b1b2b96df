// The CSV coordinator service: owns the mounted Volume (and with it the metadata lease) and
// serves nodes over TCP (csv_protocol.proto): create/open/close/resize and block maps.
//
// Block-map leases: every map handed to a node is a lease. Before a change to a file's map
// (resize, close-and-delete later), the coordinator sends Revoke to every other holder and
// waits for RevokeAck — or for the map lease duration to pass, after which a node stops
// using the map by itself — so no node ever writes to blocks that were reallocated. The
// requesting node drops its own map before it asks. Transport: plain TCP for now; TLS, shared
// with the migration engine's transport, is a later step.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "godwit/csv/volume.hpp"

namespace godwit::csv {

class Coordinator {
  public:
    // Listens on address:port (port 0 picks a free one).
    Coordinator(Volume& volume, const std::string& address, std::uint16_t port,
                std::chrono::milliseconds map_lease = std::chrono::seconds(3));
    ~Coordinator();
    Coordinator(const Coordinator&) = delete;
    Coordinator& operator=(const Coordinator&) = delete;

    std::uint16_t port() const;
    // Accepts and serves connections until stop() (from another thread or a signal path).
    void run();
    void stop();
    std::uint64_t revocations_sent() const;

    struct State;

  private:
    std::unique_ptr<State> state_;
};

} // namespace godwit::csv
