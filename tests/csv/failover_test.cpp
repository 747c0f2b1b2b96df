// Three node processes (ClusterNode: listener + lease watcher + node client) on 127.0.0.1
// share one O_DIRECT image through per-node symlinks. Each runs a metadata-heavy workload
// (mkdir, create, write, rename, remove, a long-lived file written at random offsets) and
// keeps a model of its files. The tests then
//  - SIGKILL the coordinator mid-work: a standby takes over, replays the journal, the nodes
//    re-register and finish without a single failed call;
//  - move the coordinator (planned) twice during I/O;
//  - SIGSTOP the coordinator (cut off from everyone) until another node took over, then let
//    it run again: it must find itself fenced and write no metadata;
//  - cut one node's LUN path (symlink removed and its descriptor failing): it goes
//    Redirected, keeps working through the coordinator, and returns to Direct.
// At the end every node verifies its files against its model, the test reads them again
// from a read-only mount, and the volume checker must find the volume clean (no lost or
// doubly allocated block).
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "csv_protocol.pb.h"
#include "godwit/csv/checker.hpp"
#include "godwit/csv/cluster_node.hpp"
#include "godwit/csv/volume.hpp"
#include "godwit/error.hpp"
#include "volume_model.hpp"

using namespace godwit::csv;
namespace model = godwit::csv::testing;
namespace pb = godwit::csv::protocol;

namespace {

constexpr int kNodes = 3;
constexpr std::uint32_t kLeaseMs = 1000;
constexpr auto kMapLease = std::chrono::milliseconds(500);

enum EventKind : std::int32_t { ev_ready = 0, ev_progress = 1, ev_done = 2, ev_failed = 3 };
struct Event {
    std::int32_t node = 0;
    std::int32_t kind = 0;
    std::uint64_t value[5] = {};
};

std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        std::abort();
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

using Files = std::map<std::string, std::vector<std::byte>>;

void put(std::vector<std::byte>& content, std::uint64_t offset, const std::vector<std::byte>& d) {
    if (content.size() < offset + d.size()) {
        content.resize(offset + d.size());
    }
    std::copy(d.begin(), d.end(), content.begin() + static_cast<std::ptrdiff_t>(offset));
}

std::uint32_t seed(int node, std::uint32_t i, std::uint32_t salt) {
    return static_cast<std::uint32_t>(node) * 1000003u + i * 31u + salt;
}

// Node `id`'s workload; the model of its directory comes back in `files`.
void workload(NodeClient& c, int id, std::uint32_t ops, int events, Files& files,
              std::uint32_t delay_ms) {
    const std::string dir = "/n" + std::to_string(id);
    c.make_directory(dir);
    const std::string big = dir + "/big.vhd";
    c.create(big, 1 << 20);
    files[big] = std::vector<std::byte>(1 << 20);
    const std::uint64_t big_handle = c.open(big);
    std::mt19937_64 rng(static_cast<std::uint64_t>(id) * 7919);
    std::string previous;
    for (std::uint32_t i = 0; i < ops; ++i) {
        const std::string path = dir + "/f" + std::to_string(i);
        c.create(path, 0);
        const auto h = c.open(path);
        auto data = model::pattern(seed(id, i, 1), 4096 * (1 + i % 5) + (i * 37) % 4096);
        c.write(h, 0, data);
        std::vector<std::byte> content = data;
        if (i % 3 == 0) {
            auto more = model::pattern(seed(id, i, 2), 5000);
            c.write(h, 1000 + i, more);
            put(content, 1000 + i, more);
        }
        if (i % 2 == 0) {
            c.flush(); // durable: by the node's own LUN path, or by the coordinator when Redirected
        }
        c.close(h);
        files[path] = content;
        std::string name = path;
        if (i % 4 == 3) {
            name = dir + "/g" + std::to_string(i);
            c.rename(path, name);
            files[name] = files[path];
            files.erase(path);
        }
        if (i % 5 == 4 && !previous.empty()) {
            c.remove(previous);
            files.erase(previous);
        }
        previous = name;
        // The long-lived open file: a write at a random offset (aligned or not).
        const std::uint64_t offset = rng() % ((1 << 20) - 70000);
        auto piece = model::pattern(seed(id, i, 3), 1 + rng() % 65536);
        c.write(big_handle, offset, piece);
        put(files[big], offset, piece);
        Event e{id, ev_progress, {i + 1}};
        if (::write(events, &e, sizeof e) != sizeof e) {
            _exit(5);
        }
        if (delay_ms > 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        }
    }
    c.close(big_handle);
}

// Reads every file of the model back through the node and lists the directory.
std::string verify(NodeClient& c, int id, const Files& files) {
    std::size_t listed = c.list("/n" + std::to_string(id)).size();
    if (listed != files.size()) {
        return "directory has " + std::to_string(listed) + " entries, model " +
               std::to_string(files.size());
    }
    for (const auto& [path, content] : files) {
        const auto h = c.open(path);
        std::vector<std::byte> back(content.size() + 100);
        const std::size_t n = c.read(h, 0, back);
        c.close(h);
        back.resize(n);
        if (back != content) {
            return path + " differs from the model";
        }
    }
    return {};
}

struct NodeSpec {
    std::string dir;
    std::string image;
    std::map<std::uint64_t, Endpoint> members;
};

// A cluster CA and certificates for `names` (EC P-256: quick), made with the openssl CLI.
void make_certificates(const std::string& dir, std::initializer_list<std::string> names,
                       const std::string& ca = "ca") {
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    std::string script = "set -e; cd '" + dir + "'; openssl req -x509" + ec + "-keyout " + ca +
                         ".key -out " + ca + ".crt -days 2 -subj /CN=" + ca + " 2>/dev/null;";
    for (const auto& n : names) {
        script += "openssl req" + ec + "-keyout " + n + ".key -out " + n + ".csr -subj /CN=" + n +
                  " 2>/dev/null; openssl x509 -req -in " + n + ".csr -CA " + ca + ".crt -CAkey " +
                  ca + ".key -CAcreateserial -out " + n + ".crt -days 2 2>/dev/null;";
    }
    const std::string command = "bash -c \"" + script + "\"";
    ASSERT_EQ(std::system(command.c_str()), 0) << "the openssl CLI is needed: " << command;
}

TlsOptions tls_of(const std::string& dir, const std::string& name, const std::string& ca = "ca") {
    return {dir + "/" + ca + ".crt", dir + "/" + name + ".crt", dir + "/" + name + ".key"};
}

// big.vhd of node `id` after the first `k` random writes of its workload (same sequence).
std::vector<std::byte> big_after(int id, std::uint32_t k) {
    std::vector<std::byte> content(1 << 20);
    std::mt19937_64 rng(static_cast<std::uint64_t>(id) * 7919);
    for (std::uint32_t i = 0; i < k; ++i) {
        const std::uint64_t offset = rng() % ((1 << 20) - 70000);
        put(content, offset, model::pattern(seed(id, i, 3), 1 + rng() % 65536));
    }
    return content;
}

std::string link_of(const NodeSpec& spec, int id) {
    return spec.dir + "/node" + std::to_string(id) + ".lun";
}

// A node process: commands on `commands` ('g' go, 'c' cut the LUN path, 'r' restore it,
// 'q' quit), events on `events`.
[[noreturn]] void node_main(const NodeSpec& spec, int id, std::uint32_t ops, std::uint32_t delay_ms,
                            int commands, int events) {
    auto emit = [&](Event e) {
        e.node = id;
        if (::write(events, &e, sizeof e) != sizeof e) {
            _exit(5);
        }
    };
    try {
        ClusterNodeOptions o;
        o.lun_path = link_of(spec, id);
        o.identity = {static_cast<std::uint64_t>(id), "node" + std::to_string(id)};
        o.members = spec.members;
        o.tls = tls_of(spec.dir, "node" + std::to_string(id));
        o.map_lease = kMapLease;
        o.lease_duration_ms = kLeaseMs;
        o.call_timeout = std::chrono::milliseconds(3000);
        o.pause_limit = std::chrono::milliseconds(60000);
        o.coordinator = id == 1;
        ClusterNode node(o);
        emit({id, ev_ready, {}});
        char command = 0;
        if (::read(commands, &command, 1) != 1 || command != 'g') {
            _exit(6);
        }
        node.join();
        std::atomic<bool> quit{false};
        std::thread control([&] {
            char c = 0;
            while (::read(commands, &c, 1) == 1) {
                if (c == 'c') {
                    ::unlink(link_of(spec, id).c_str()); // the path is gone ...
                    node.data_path().sever();            // ... and I/O on it fails
                } else if (c == 'r') {
                    (void)::symlink(spec.image.c_str(), link_of(spec, id).c_str());
                } else if (c == 'q') {
                    break;
                }
            }
            quit = true;
        });
        Files files;
        std::string problem;
        try {
            workload(node.client(), id, ops, events, files, delay_ms);
            problem = verify(node.client(), id, files);
        } catch (const std::exception& e) {
            problem = e.what();
        }
        if (!problem.empty()) {
            std::fprintf(stderr, "node %d: %s\n", id, problem.c_str());
            emit({id, ev_failed, {}});
        } else {
            emit({id,
                  ev_done,
                  {node.client().reconnections(),
                   static_cast<std::uint64_t>(node.client().longest_pause().count()),
                   node.takeovers(), node.fenced(), node.client().redirected_bytes()}});
        }
        control.join();
        ::close(commands);
        // Leaving: a coordinator unmounts cleanly and releases the lease.
        _exit(problem.empty() ? 0 : 4);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "node %d: %s\n", id, e.what());
        emit({id, ev_failed, {}});
        _exit(3);
    }
}

struct Cluster {
    NodeSpec spec;
    pid_t pids[kNodes + 1] = {};
    int commands[kNodes + 1] = {};
    int events = -1;
    std::map<int, Event> finished;
    std::map<int, std::uint64_t> progress;
    TlsContext admin; // the test's own certificate (status, move)

    Cluster(const std::string& name, std::uint32_t ops, std::uint32_t delay_ms) {
        spec.dir =
            (std::filesystem::path(GODWIT_CSV_TEST_DIR) / (name + "-" + std::to_string(::getpid())))
                .string();
        std::filesystem::remove_all(spec.dir);
        std::filesystem::create_directories(spec.dir);
        spec.image = spec.dir + "/lun.img";
        PosixBlockDevice::create_image(spec.image, 96ull << 20);
        {
            PosixBlockDevice lun(spec.image, PosixBlockDevice::Access::read_write, true);
            FormatOptions f;
            f.label = "Volume1";
            f.inode_count = 4000;
            format_volume(lun, f);
        }
        make_certificates(spec.dir, {"node1", "node2", "node3", "admin"});
        admin = make_tls_context(tls_of(spec.dir, "admin"));
        for (int id = 1; id <= kNodes; ++id) {
            spec.members[static_cast<std::uint64_t>(id)] = Endpoint{"127.0.0.1", free_port()};
            std::filesystem::create_symlink(spec.image, link_of(spec, id));
        }
        int ev[2];
        if (::pipe(ev) != 0) {
            std::abort();
        }
        events = ev[0];
        for (int id = 1; id <= kNodes; ++id) {
            int cmd[2];
            if (::pipe(cmd) != 0) {
                std::abort();
            }
            pids[id] = ::fork();
            if (pids[id] == 0) {
                ::close(cmd[1]);
                ::close(ev[0]);
                node_main(spec, id, ops, delay_ms, cmd[0], ev[1]);
            }
            ::close(cmd[0]);
            commands[id] = cmd[1];
            // Node 1 mounts first, so it is the coordinator before the others look.
            Event e = next();
            if (e.kind != ev_ready) {
                ADD_FAILURE() << "node " << e.node << " did not start";
            }
        }
        ::close(ev[1]);
        for (int id = 1; id <= kNodes; ++id) {
            send(id, 'g');
        }
    }

    ~Cluster() {
        for (int id = 1; id <= kNodes; ++id) {
            if (pids[id] > 0) {
                ::kill(pids[id], SIGKILL);
                ::waitpid(pids[id], nullptr, 0);
            }
        }
        std::filesystem::remove_all(spec.dir);
    }

    void send(int id, char c) {
        if (::write(commands[id], &c, 1) != 1) {
            ADD_FAILURE() << "node " << id << " is gone";
        }
    }

    Event next() {
        Event e;
        if (::read(events, &e, sizeof e) != sizeof e) {
            ADD_FAILURE() << "the event pipe closed";
            e.kind = ev_failed;
            return e;
        }
        if (e.kind == ev_progress) {
            progress[e.node] = e.value[0];
        } else if (e.kind == ev_done || e.kind == ev_failed) {
            finished[e.node] = e;
        }
        return e;
    }

    // Until every node in `nodes` made `ops` steps (or finished).
    void wait_progress(std::initializer_list<int> nodes, std::uint64_t ops) {
        for (;;) {
            bool all = true;
            for (int id : nodes) {
                all = all && (progress[id] >= ops || finished.count(id));
            }
            if (all) {
                return;
            }
            next();
        }
    }

    void wait_done(std::initializer_list<int> nodes) {
        for (;;) {
            bool all = true;
            for (int id : nodes) {
                all = all && finished.count(id);
            }
            if (all) {
                return;
            }
            next();
        }
    }

    // Quit every live node and reap it.
    void shut_down(std::initializer_list<int> nodes) {
        for (int id : nodes) {
            send(id, 'q');
        }
        for (int id : nodes) {
            int status = 0;
            ::waitpid(pids[id], &status, 0);
            pids[id] = 0;
            EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
                << "node " << id << " status " << status;
        }
    }

    pb::NodeStatus status_of(int id) {
        pb::NodeMessage ask;
        ask.mutable_status();
        pb::CoordinatorMessage reply;
        request_once(spec.members.at(static_cast<std::uint64_t>(id)), admin, ask, reply,
                     std::chrono::seconds(5));
        return reply.status();
    }

    // Takes snapshot `name` through whichever node coordinates (as `godwit csv snapshot`).
    void snapshot(const std::string& name) {
        std::vector<Endpoint> listeners;
        for (auto& [id, e] : spec.members) {
            listeners.push_back(e);
        }
        pb::NodeMessage ask;
        ask.mutable_snapshot()->set_op(pb::SnapshotRequest::CREATE);
        ask.mutable_snapshot()->set_name(name);
        pb::CoordinatorMessage reply;
        request_coordinator(listeners, admin, ask, reply, std::chrono::seconds(20));
        ASSERT_FALSE(reply.has_error()) << reply.error().message();
    }

    // Snapshot `name` from a read-only mount: each node's big.vhd is what it was after some
    // write k with at_least[id] <= k < below[id] (one point in time, untouched by the writes
    // since: without copy-on-write it would be the final state), and each small file is in
    // one of the states its writes pass through.
    void verify_snapshot(const std::string& name, std::map<int, std::uint64_t> at_least,
                         std::map<int, std::uint32_t> below) {
        PosixBlockDevice lun(spec.image, PosixBlockDevice::Access::read_only, true);
        MountOptions o;
        o.read_only = true;
        auto v = Volume::mount(lun, o);
        for (auto [id, lo] : at_least) {
            const std::string dir = "/.snapshots/" + name + "/n" + std::to_string(id);
            auto h = v->open(dir + "/big.vhd");
            std::vector<std::byte> big(1 << 20);
            ASSERT_EQ(v->read(h, 0, big), big.size());
            v->close(h);
            bool found = false;
            for (std::uint32_t k = static_cast<std::uint32_t>(lo); k < below.at(id) && !found;
                 ++k) {
                found = big == big_after(id, k);
            }
            EXPECT_TRUE(found) << "node " << id << ": the snapshot's big.vhd is no point in time "
                               << "in [" << lo << ", " << below.at(id) << ")";
            for (const auto& fi : v->list(dir)) {
                if (fi.name == "big.vhd") {
                    continue;
                }
                const std::uint32_t i = static_cast<std::uint32_t>(std::stoul(fi.name.substr(1)));
                auto first = model::pattern(seed(id, i, 1), 4096 * (1 + i % 5) + (i * 37) % 4096);
                std::vector<std::byte> all = first;
                if (i % 3 == 0) {
                    put(all, 1000 + i, model::pattern(seed(id, i, 2), 5000));
                }
                auto fh = v->open(dir + "/" + fi.name);
                std::vector<std::byte> got(all.size() + 10);
                got.resize(v->read(fh, 0, got));
                v->close(fh);
                // A write past the end is a resize (zeros), then the data.
                std::vector<std::byte> first_grown = first;
                first_grown.resize(all.size());
                const bool ok = got.empty() || got == std::vector<std::byte>(first.size()) ||
                                got == first || got == first_grown || got == all;
                EXPECT_TRUE(ok) << "node " << id << " " << fi.name << " in the snapshot ("
                                << got.size() << " bytes)";
            }
        }
    }

    // The nodes' files once more from a read-only mount (by replaying each workload's
    // model), then the checker.
    void verify_on_disk(std::initializer_list<int> nodes, std::uint32_t ops) {
        PosixBlockDevice lun(spec.image, PosixBlockDevice::Access::read_only, true);
        auto report = check_volume(lun);
        EXPECT_TRUE(report.clean()) << (report.problems.empty() ? "" : report.problems.front());
        MountOptions o;
        o.read_only = true;
        auto v = Volume::mount(lun, o);
        for (int id : nodes) {
            EXPECT_FALSE(v->list("/n" + std::to_string(id)).empty()) << "node " << id;
            for (const auto& fi : v->list("/n" + std::to_string(id))) {
                EXPECT_EQ(fi.type, InodeType::file);
                const std::string& n = fi.name;
                if (n == "big.vhd") {
                    continue;
                }
                const std::uint32_t i = static_cast<std::uint32_t>(std::stoul(n.substr(1)));
                EXPECT_LT(i, ops) << n;
                auto data = model::pattern(seed(id, i, 1), 4096 * (1 + i % 5) + (i * 37) % 4096);
                std::vector<std::byte> want = data;
                if (i % 3 == 0) {
                    put(want, 1000 + i, model::pattern(seed(id, i, 2), 5000));
                }
                auto h = v->open("/n" + std::to_string(id) + "/" + n);
                std::vector<std::byte> got(want.size() + 10);
                got.resize(v->read(h, 0, got));
                v->close(h);
                EXPECT_TRUE(got == want) << "node " << id << " " << n;
            }
        }
    }
};

} // namespace

TEST(CsvFailover, CoordinatorKilledDuringMetadataWorkStandbyTakesOver) {
    constexpr std::uint32_t kOps = 60;
    Cluster cluster("failover", kOps, 0);
    cluster.wait_progress({2, 3}, 12);
    // A snapshot while all three write; the standby that takes over rebuilds which blocks
    // it shares, and the nodes' writes after it copy first, across the failover.
    const std::map<int, std::uint64_t> at_snapshot = cluster.progress;
    cluster.snapshot("before-failover");
    ::kill(cluster.pids[1], SIGKILL);
    ::waitpid(cluster.pids[1], nullptr, 0);
    cluster.pids[1] = 0;
    cluster.wait_done({2, 3});
    for (int id : {2, 3}) {
        const Event& e = cluster.finished[id];
        ASSERT_EQ(e.kind, ev_done) << "node " << id << " failed (see its stderr)";
        EXPECT_GE(e.value[0], 1u) << "node " << id << " never re-registered";
        std::printf("node %d: %llu re-registrations, longest pause %llu ms, %llu takeovers\n", id,
                    static_cast<unsigned long long>(e.value[0]),
                    static_cast<unsigned long long>(e.value[1]),
                    static_cast<unsigned long long>(e.value[2]));
    }
    EXPECT_GE(cluster.finished[2].value[2] + cluster.finished[3].value[2], 1u)
        << "no standby took the volume over";
    cluster.shut_down({2, 3});
    cluster.verify_on_disk({2, 3}, kOps);
    // Nodes 2 and 3 went on to their last write; node 1 died at some point.
    cluster.verify_snapshot("before-failover", at_snapshot, {{1, kOps + 1}, {2, kOps}, {3, kOps}});
}

TEST(CsvFailover, PlannedMovesDuringIo) {
    constexpr std::uint32_t kOps = 45;
    Cluster cluster("move", kOps, 0);
    std::vector<Endpoint> listeners;
    for (auto& [id, e] : cluster.spec.members) {
        listeners.push_back(e);
    }
    cluster.wait_progress({1, 2, 3}, 8);
    EXPECT_EQ(request_move(listeners, cluster.admin, 2, std::chrono::seconds(20)), 1u);
    EXPECT_TRUE(cluster.status_of(2).coordinator());
    EXPECT_FALSE(cluster.status_of(1).coordinator());
    cluster.wait_progress({1, 2, 3}, 20);
    EXPECT_EQ(request_move(listeners, cluster.admin, 3, std::chrono::seconds(20)), 2u);
    EXPECT_TRUE(cluster.status_of(3).coordinator());
    cluster.wait_done({1, 2, 3});
    for (int id = 1; id <= kNodes; ++id) {
        const Event& e = cluster.finished[id];
        ASSERT_EQ(e.kind, ev_done) << "node " << id << " failed (see its stderr)";
        EXPECT_EQ(e.value[3], 0u) << "a planned move fenced node " << id;
        std::printf("node %d: %llu re-registrations, longest pause %llu ms\n", id,
                    static_cast<unsigned long long>(e.value[0]),
                    static_cast<unsigned long long>(e.value[1]));
    }
    cluster.shut_down({1, 2, 3});
    cluster.verify_on_disk({1, 2, 3}, kOps);
}

TEST(CsvFailover, PartitionedCoordinatorIsFencedAndWritesNoMetadata) {
    constexpr std::uint32_t kOps = 40;
    Cluster cluster("partition", kOps, 0);
    cluster.wait_progress({1, 2, 3}, 8);
    // Node 1 (the coordinator) stops answering anyone and stops heartbeating.
    ::kill(cluster.pids[1], SIGSTOP);
    const auto stopped = std::chrono::steady_clock::now();
    // Until a standby holds the lease (its status says it coordinates).
    bool taken = false;
    while (!taken && std::chrono::steady_clock::now() - stopped < std::chrono::seconds(20)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        for (int id : {2, 3}) {
            try {
                taken = taken || cluster.status_of(id).coordinator();
            } catch (const godwit::Error&) {
            }
        }
    }
    ASSERT_TRUE(taken) << "no standby took over from the stopped coordinator";
    // The old coordinator runs again: its next heartbeat or commit finds the lease taken.
    ::kill(cluster.pids[1], SIGCONT);
    cluster.wait_done({1, 2, 3});
    for (int id = 1; id <= kNodes; ++id) {
        ASSERT_EQ(cluster.finished[id].kind, ev_done) << "node " << id << " failed";
    }
    EXPECT_GE(cluster.finished[1].value[3], 1u) << "node 1 never noticed it was fenced";
    EXPECT_FALSE(cluster.status_of(1).coordinator());
    cluster.shut_down({1, 2, 3});
    cluster.verify_on_disk({1, 2, 3}, kOps);
}

TEST(CsvFailover, NodeWithoutLunPathIsRedirectedAndReturns) {
    constexpr std::uint32_t kOps = 40;
    Cluster cluster("redirect", kOps, 30);
    cluster.wait_progress({1, 2, 3}, 5);
    cluster.send(2, 'c');
    // The next direct I/O of node 2 fails and it goes Redirected.
    bool redirected = false;
    for (int i = 0; i < 200 && !redirected; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        redirected = cluster.status_of(2).state() == pb::REDIRECTED;
    }
    EXPECT_TRUE(redirected) << "node 2 did not report Redirected";
    bool seen_by_coordinator = false;
    const pb::NodeStatus coordinator_view = cluster.status_of(1);
    for (const auto& n : coordinator_view.nodes()) {
        seen_by_coordinator =
            seen_by_coordinator || (n.node_id() == 2 && n.state() == pb::REDIRECTED);
    }
    EXPECT_TRUE(seen_by_coordinator) << "the coordinator does not show node 2 Redirected";
    const std::uint64_t at_cut = cluster.progress[2];
    cluster.wait_progress({2}, at_cut + 6); // keeps working through the coordinator
    EXPECT_EQ(cluster.status_of(2).state(), pb::REDIRECTED) << "the path came back by itself";
    cluster.send(2, 'r');
    bool direct = false;
    for (int i = 0; i < 200 && !direct; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        direct = cluster.status_of(2).state() == pb::DIRECT;
    }
    EXPECT_TRUE(direct) << "node 2 did not return to Direct";
    cluster.wait_done({1, 2, 3});
    for (int id = 1; id <= kNodes; ++id) {
        ASSERT_EQ(cluster.finished[id].kind, ev_done) << "node " << id << " failed";
    }
    EXPECT_GT(cluster.finished[2].value[4], 0u) << "node 2 moved no data through the coordinator";
    EXPECT_EQ(cluster.finished[1].value[4], 0u);
    cluster.shut_down({1, 2, 3});
    cluster.verify_on_disk({1, 2, 3}, kOps);
}

// Mutual TLS: a node (or client) without a certificate from the cluster CA is refused, and
// so is plaintext; the members talk.
TEST(CsvFailover, OnlyCertificatesOfTheClusterCaAreAccepted) {
    const std::string dir =
        (std::filesystem::path(GODWIT_CSV_TEST_DIR) / ("tls-" + std::to_string(::getpid())))
            .string();
    std::filesystem::create_directories(dir);
    make_certificates(dir, {"node1", "admin"});
    make_certificates(dir, {"stranger"}, "otherca");
    const std::string image = dir + "/lun.img";
    PosixBlockDevice::create_image(image, 32ull << 20);
    {
        PosixBlockDevice lun(image, PosixBlockDevice::Access::read_write, true);
        format_volume(lun, FormatOptions{"Volume1", 0, 0, 0});
    }
    ClusterNodeOptions o;
    o.lun_path = image;
    o.identity = {1, "node1"};
    o.members[1] = Endpoint{"127.0.0.1", free_port()};
    o.tls = tls_of(dir, "node1");
    o.coordinator = true;
    o.standby = false;
    ClusterNode node(o);
    pb::NodeMessage ask;
    ask.mutable_status();
    pb::CoordinatorMessage reply;
    request_once(o.members[1], make_tls_context(tls_of(dir, "admin")), ask, reply,
                 std::chrono::seconds(5));
    EXPECT_TRUE(reply.status().coordinator());
    EXPECT_THROW(request_once(o.members[1], make_tls_context(tls_of(dir, "stranger", "otherca")),
                              ask, reply, std::chrono::seconds(5)),
                 godwit::Error);
    EXPECT_THROW(request_once(o.members[1], nullptr, ask, reply, std::chrono::seconds(2)),
                 godwit::Error)
        << "a plaintext client was served by a TLS node";
    // Missing certificates are refused up front, unless plaintext is asked for.
    ClusterNodeOptions bare = o;
    bare.tls = {};
    bare.coordinator = false;
    bare.members[1].port = free_port();
    EXPECT_THROW(ClusterNode{bare}, godwit::Error);
    node.join();
    EXPECT_EQ(node.client().state(), IoState::direct);
    node.client().create("/over-tls", 4096);
    EXPECT_EQ(node.client().stat("/over-tls").size, 4096u);
}
