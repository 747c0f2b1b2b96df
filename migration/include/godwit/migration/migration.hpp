// The live-migration engine: pre-copy (full pass, then passes over the dirty set), switchover
// when the rest fits the downtime limit at the measured bandwidth, auto-converge by
// throttling, zero-page runs, XBZRLE deltas, a bandwidth cap, cancellation at every phase.
// The source keeps its VM runnable until the destination acknowledges the complete stream;
// any failure resumes it unchanged. docs/migration-stream.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "godwit/migration/channel.hpp"
#include "godwit/migration/vm_interfaces.hpp"

namespace godwit::migration {

enum class Phase { setup, precopy, stop_and_copy, completed, failed, cancelled };
const char* to_string(Phase p);

struct Progress {
    Phase phase = Phase::setup;
    unsigned iteration = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t pages_remaining = 0;
    double dirty_rate_pages_per_s = 0;
    double bandwidth_bytes_per_s = 0;
    double expected_downtime_ms = 0;
    unsigned throttle_percent = 0;
    double percent = 0; // never goes backwards
};

struct Report {
    bool ok = false;
    Phase phase = Phase::failed;
    std::string error;
    double total_time_ms = 0, setup_time_ms = 0, downtime_ms = 0;
    // Where the downtime went: pausing the vCPUs, the last dirty pages, the device and vCPU
    // state, and END until the destination's ACK (it builds and adopts the VM in between).
    struct Downtime {
        double pause_ms = 0, pages_ms = 0, state_ms = 0, ack_ms = 0;
    } downtime;
    std::uint64_t bytes_on_wire = 0;
    std::uint64_t guest_bytes = 0;
    std::uint64_t pages_raw = 0, pages_zero = 0, pages_xbzrle = 0;
    unsigned iterations = 0;
    unsigned max_throttle_percent = 0;
    bool converged = false; // switched over because the rest fit the downtime limit
    nlohmann::ordered_json to_json() const;
};

struct SourceOptions {
    std::string vm_name = "vm";
    bool live = true; // false: pause first, one pass (quick migration / save)
    double downtime_limit_ms = 300;
    unsigned max_iterations = 30;
    std::uint64_t max_bytes = 0;       // 0 = no cap; reached => switch over
    std::uint64_t bandwidth_limit = 0; // bytes/s, 0 = unlimited
    bool auto_converge = true;
    bool xbzrle = true;
    std::uint64_t xbzrle_cache_pages = 65536; // 256 MiB of page copies
    bool digest = true; // SHA-256 of memory at switchover, checked by the destination
    std::chrono::seconds ack_timeout{60};
    std::function<void(const Progress&)> on_progress;
    const std::atomic<bool>* cancel = nullptr;
};

// Migrates the VM out through `channel`. Never throws: failures are in the report, with the
// VM running as before.
Report migrate_out(Channel& channel, GuestMemory& memory, DirtyLog& dirty, VmControl& vm,
                   StateProvider& state, const SourceOptions& options);

// The destination's VM while it is being built from the stream.
class IncomingVm {
  public:
    virtual ~IncomingVm() = default;
    // Creates the VM's memory for `page_count` pages (all zero); Error to refuse (too big).
    virtual GuestMemory& create(const std::string& name, std::uint64_t page_count) = 0;
    virtual void restore(const std::vector<StateBlob>& state) = 0;
    virtual void start() = 0;   // the VM runs here now
    virtual void discard() = 0; // partial VM dropped
};

struct IncomingResult {
    bool ok = false;
    std::string error;
    std::string vm_name;
    std::uint64_t pages = 0;
    std::uint64_t bytes_received = 0;
    // END received until the VM was rebuilt (IncomingVm::restore): the destination's part of
    // the downtime, before its ACK.
    double restore_ms = 0;
};

// Receives one VM from `channel`, validating every record; on any error the partial VM is
// discarded and (when the channel still works) the source is told why.
IncomingResult migrate_in(Channel& channel, IncomingVm& vm,
                          const std::atomic<bool>* cancel = nullptr);

} // namespace godwit::migration
