// `godwit csv format|check|ls|add|list|remove|node|mount|status|move|snapshot`: create,
// verify and inspect cluster shared volumes (docs/csv-format.md), register them on this host
// (a volume added once is then named instead of described), run a cluster node (mounted
// through FUSE with `mount`, docs/csv-namespace.md) and ask a cluster for its state, a
// planned coordinator move or a snapshot (docs/csv-protocol.md).
#include "../cli.hpp"

#include <cctype>
#include <chrono>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <thread>

#include "csv_protocol.pb.h"
#include "godwit/csv/checker.hpp"
#include "godwit/csv/cluster_node.hpp"
#include "godwit/csv/csv_fuse.hpp"
#include "godwit/csv/volume.hpp"
#include "godwit/csv/volume_registry.hpp"
#include "godwit/logging.hpp"

namespace godwit::cli {
namespace {

using namespace godwit::csv;

// "10G", "512M", "4096" -> bytes.
std::uint64_t parse_size(const std::string& text) {
    std::size_t used = 0;
    unsigned long long value = 0;
    try {
        value = std::stoull(text, &used);
    } catch (const std::exception&) {
        throw Error(ErrorCode::usage, "invalid size '" + text + "'");
    }
    std::string suffix = text.substr(used);
    static const std::pair<const char*, int> units[] = {
        {"", 0}, {"K", 10}, {"M", 20}, {"G", 30}, {"T", 40}};
    for (auto [name, shift] : units) {
        if (suffix == name ||
            (suffix.size() == 3 && suffix.substr(0, 1) == name && suffix.substr(1) == "iB")) {
            return static_cast<std::uint64_t>(value) << shift;
        }
    }
    throw Error(ErrorCode::usage, "invalid size suffix in '" + text + "' (use K, M, G or T)");
}

// Opens the LUN with O_DIRECT, falling back to buffered I/O where the file system has none.
std::unique_ptr<PosixBlockDevice> open_device(const std::string& path, bool writable,
                                              bool buffered) {
    auto access =
        writable ? PosixBlockDevice::Access::read_write : PosixBlockDevice::Access::read_only;
    if (!buffered) {
        try {
            return std::make_unique<PosixBlockDevice>(path, access, true);
        } catch (const Error& e) {
            if (e.code() != ErrorCode::unsupported) {
                throw;
            }
            spdlog::warn("{}: no O_DIRECT on this file system, using buffered I/O", path);
        }
    }
    return std::make_unique<PosixBlockDevice>(path, access, false);
}

int run_format(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("device", po::value<std::string>()->required(),
                          "block device or image file")(
        "label", po::value<std::string>()->default_value(""), "volume label (up to 63 bytes)")(
        "size", po::value<std::string>(),
        "volume size (K/M/G/T); creates the image file if missing")(
        "journal-blocks", po::value<std::uint64_t>()->default_value(0),
        "journal size in 4 KiB blocks")("inodes", po::value<std::uint64_t>()->default_value(0),
                                        "number of inodes")("buffered", po::bool_switch(),
                                                            "do not use O_DIRECT");
    po::positional_options_description positional;
    positional.add("device", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    const auto path = vm["device"].as<std::string>();
    FormatOptions f;
    f.label = vm["label"].as<std::string>();
    f.journal_blocks = vm["journal-blocks"].as<std::uint64_t>();
    f.inode_count = vm["inodes"].as<std::uint64_t>();
    if (vm.count("size")) {
        f.size_bytes = parse_size(vm["size"].as<std::string>());
        if (!std::filesystem::exists(path)) {
            PosixBlockDevice::create_image(path, f.size_bytes);
        }
    }
    auto device = open_device(path, true, vm["buffered"].as<bool>());
    Superblock sb = format_volume(*device, f);
    const std::uint64_t data_bytes = (sb.data_end - sb.data_start) * kBlockSize;
    if (inv.json) {
        print_json(*inv.out, Json{{"device", path},
                                  {"label", f.label},
                                  {"total_blocks", sb.total_blocks},
                                  {"block_size", kBlockSize},
                                  {"data_bytes", data_bytes},
                                  {"inodes", sb.inode_count},
                                  {"journal_blocks", sb.journal_blocks}});
    } else {
        *inv.out << "formatted " << path << ": " << format_bytes(sb.total_blocks * kBlockSize)
                 << ", " << format_bytes(data_bytes) << " for data, " << sb.inode_count
                 << " inodes\n";
    }
    return 0;
}

int run_check(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("device", po::value<std::string>()->required(),
                          "block device or image file")("buffered", po::bool_switch(),
                                                        "do not use O_DIRECT");
    po::positional_options_description positional;
    positional.add("device", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    const auto path = vm["device"].as<std::string>();
    auto device = open_device(path, false, vm["buffered"].as<bool>());
    CheckReport report = check_volume(*device);
    if (inv.json) {
        Json problems = Json::array();
        for (const auto& p : report.problems) {
            problems.push_back(p);
        }
        print_json(*inv.out, Json{{"device", path},
                                  {"clean", report.clean()},
                                  {"problems", problems},
                                  {"total_blocks", report.total_blocks},
                                  {"free_blocks", report.free_blocks},
                                  {"files", report.files},
                                  {"directories", report.directories},
                                  {"pending_transaction", report.pending_txn_seq}});
    } else {
        for (const auto& p : report.problems) {
            *inv.out << "problem: " << p << '\n';
        }
        *inv.out << path << ": " << (report.clean() ? "clean" : "NOT clean") << ", " << report.files
                 << " files, " << report.directories << " directories, "
                 << format_bytes(report.free_blocks * kBlockSize) << " free\n";
    }
    return report.clean() ? 0 : exit_code_for(ErrorCode::failed);
}

int run_ls(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("device", po::value<std::string>()->required(),
                          "block device or image file")(
        "path", po::value<std::string>()->default_value("/"),
        "directory on the volume")("buffered", po::bool_switch(), "do not use O_DIRECT");
    po::positional_options_description positional;
    positional.add("device", 1).add("path", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    auto device = open_device(vm["device"].as<std::string>(), false, vm["buffered"].as<bool>());
    MountOptions mount;
    mount.read_only = true; // no lease, nothing written: safe while a coordinator runs
    auto volume = Volume::mount(*device, mount);
    auto entries = volume->list(vm["path"].as<std::string>());
    if (inv.json) {
        Json list = Json::array();
        for (const auto& e : entries) {
            list.push_back({{"name", e.name},
                            {"type", e.type == InodeType::directory ? "directory" : "file"},
                            {"size", e.size},
                            {"inode", e.inode},
                            {"extents", e.extent_count}});
        }
        print_json(*inv.out, Json{{"path", vm["path"].as<std::string>()}, {"entries", list}});
    } else {
        for (const auto& e : entries) {
            *inv.out << (e.type == InodeType::directory ? 'd' : '-') << ' ' << e.size << '\t'
                     << e.name << (e.type == InodeType::directory ? "/" : "") << '\n';
        }
    }
    return 0;
}

// "1=127.0.0.1:7001,2=127.0.0.1:7002" -> members.
std::map<std::uint64_t, Endpoint> parse_members(const std::string& text) {
    std::map<std::uint64_t, Endpoint> members;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const std::string item = text.substr(start, comma - start);
        const std::size_t eq = item.find('=');
        if (eq == std::string::npos) {
            throw Error(ErrorCode::usage, "invalid member '" + item + "' (want ID=ADDRESS:PORT)");
        }
        std::uint64_t id = 0;
        try {
            id = std::stoull(item.substr(0, eq));
        } catch (const std::exception&) {
            throw Error(ErrorCode::usage, "invalid node id in '" + item + "'");
        }
        members[id] = parse_endpoint(item.substr(eq + 1));
        start = comma + 1;
    }
    return members;
}

TlsContext tls_from(const po::variables_map& vm) {
    if (vm["plaintext"].as<bool>()) {
        return nullptr;
    }
    TlsOptions t;
    for (const char* key : {"ca", "cert", "key"}) {
        if (!vm.count(key)) {
            throw Error(ErrorCode::usage,
                        std::string("--") + key + " is required (or --plaintext, explicitly)");
        }
    }
    t.ca_file = vm["ca"].as<std::string>();
    t.cert_file = vm["cert"].as<std::string>();
    t.key_file = vm["key"].as<std::string>();
    return make_tls_context(t);
}

TlsContext tls_from(const RegisteredVolume& v) {
    if (v.plaintext) {
        return nullptr;
    }
    return make_tls_context(TlsOptions{v.ca, v.cert, v.key});
}

void add_registry_option(po::options_description& options) {
    options.add_options()("registry", po::value<std::string>(),
                          "directory of registered volumes (default $GODWIT_CSV_REGISTRY or "
                          "/etc/godwit/csv)");
}

VolumeRegistry registry_from(const po::variables_map& vm) {
    return VolumeRegistry(vm.count("registry")
                              ? std::filesystem::path(vm["registry"].as<std::string>())
                              : VolumeRegistry::default_dir());
}

// The registered volume `name`, or Error(not_found) saying how to register it.
RegisteredVolume registered(const po::variables_map& vm, const std::string& name) {
    VolumeRegistry registry = registry_from(vm);
    auto v = registry.find(name);
    if (!v) {
        throw Error(ErrorCode::not_found,
                    "no volume '" + name + "' registered in " + registry.dir().string() +
                        " (`godwit csv add DEVICE --id N --members ...` registers one; or give "
                        "--members and the TLS options)");
    }
    return *v;
}

void add_tls_options(po::options_description& options) {
    options.add_options()("ca", po::value<std::string>(), "cluster CA certificate (PEM)")(
        "cert", po::value<std::string>(),
        "this node's certificate (PEM)")("key", po::value<std::string>(), "its private key (PEM)")(
        "plaintext", po::bool_switch(), "no TLS (only on a trusted, isolated network)");
}

// The options `csv node` and `csv mount` share: the LUN, this node and the cluster (or the
// name of a registered volume instead of the device, with none of the others).
void add_node_options(po::options_description& options) {
    options.add_options()("device", po::value<std::string>()->required(),
                          "this node's path to the LUN, or a registered volume's name")(
        "id", po::value<std::uint64_t>(), "this node's id (non-zero)")(
        "members", po::value<std::string>(), "every node: ID=ADDRESS:PORT,... (this one included)")(
        "coordinator", po::bool_switch(), "mount the volume at start (the first coordinator)")(
        "lease-ms", po::value<std::uint32_t>()->default_value(10000), "coordinator lease")(
        "map-lease-ms", po::value<std::uint32_t>()->default_value(3000), "block-map lease");
    add_tls_options(options);
    add_registry_option(options);
}

// A registered volume named as the device (and no --id/--members given), else nothing.
std::optional<RegisteredVolume> registered_node(const po::variables_map& vm) {
    if (vm.count("id") || vm.count("members")) {
        return std::nullopt;
    }
    return registered(vm, vm["device"].as<std::string>());
}

ClusterNodeOptions node_options_from(const po::variables_map& vm) {
    ClusterNodeOptions o;
    if (auto v = registered_node(vm)) {
        o.lun_path = v->device;
        o.identity = {v->node_id, "node" + std::to_string(v->node_id)};
        o.members = parse_members(v->members);
        o.plaintext = v->plaintext;
        if (!o.plaintext) {
            o.tls = {v->ca, v->cert, v->key};
        }
        o.coordinator = vm["coordinator"].as<bool>();
        o.lease_duration_ms = v->lease_ms;
        o.map_lease = std::chrono::milliseconds(v->map_lease_ms);
        return o;
    }
    for (const char* key : {"id", "members"}) {
        if (!vm.count(key)) {
            throw Error(ErrorCode::usage,
                        std::string("--") + key + " is required (or name a registered volume)");
        }
    }
    o.lun_path = vm["device"].as<std::string>();
    o.identity = {vm["id"].as<std::uint64_t>(),
                  "node" + std::to_string(vm["id"].as<std::uint64_t>())};
    o.members = parse_members(vm["members"].as<std::string>());
    o.plaintext = vm["plaintext"].as<bool>();
    if (!o.plaintext) {
        tls_from(vm); // validates the options
        o.tls = {vm["ca"].as<std::string>(), vm["cert"].as<std::string>(),
                 vm["key"].as<std::string>()};
    }
    o.coordinator = vm["coordinator"].as<bool>();
    o.lease_duration_ms = vm["lease-ms"].as<std::uint32_t>();
    o.map_lease = std::chrono::milliseconds(vm["map-lease-ms"].as<std::uint32_t>());
    return o;
}

// SIGINT and SIGTERM blocked in this thread and every thread it starts afterwards (they
// are taken with sigwait).
sigset_t block_stop_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    return set;
}

// Runs one cluster node in the foreground until SIGINT/SIGTERM.
int run_node(Invocation& inv) {
    po::options_description options("Options");
    add_node_options(options);
    po::positional_options_description positional;
    positional.add("device", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    const ClusterNodeOptions o = node_options_from(vm);
    sigset_t set = block_stop_signals(); // the node's threads inherit the mask
    ClusterNode node(o);
    node.join();
    *inv.out << "csv node " << o.identity.node_id << " running ("
             << (node.coordinating() ? "coordinator" : "standby") << ")" << std::endl;
    int signal = 0;
    sigwait(&set, &signal);
    return 0;
}

// /ClusterStorage/<label> (a label that is no usable directory name becomes "Volume").
std::string default_mountpoint(const std::string& label) {
    const bool usable =
        !label.empty() && label != "." && label != ".." && label.find('/') == std::string::npos;
    return "/ClusterStorage/" + (usable ? label : std::string("Volume"));
}

// Runs a cluster node and shows its volume at a mountpoint through FUSE until SIGINT/SIGTERM
// or an unmount (umount / fusermount3 -u).
int run_mount(Invocation& inv) {
    po::options_description options("Options");
    add_node_options(options);
    options.add_options()("mountpoint", po::value<std::string>(),
                          "an existing directory (default /ClusterStorage/<volume label>, "
                          "created when missing)")("allow-other", po::bool_switch(),
                                                   "let other users use the mount")(
        "fuse-debug", po::bool_switch(), "print libfuse's request trace on stderr");
    po::positional_options_description positional;
    positional.add("device", 1).add("mountpoint", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    const ClusterNodeOptions o = node_options_from(vm);
    require_fuse_device(); // before the node joins the cluster
    FuseMountOptions m;
    m.allow_other = vm["allow-other"].as<bool>();
    m.debug = vm["fuse-debug"].as<bool>();
    if (vm.count("mountpoint")) {
        m.mountpoint = vm["mountpoint"].as<std::string>();
    } else if (auto v = registered_node(vm); v && !v->mountpoint.empty()) {
        m.mountpoint = v->mountpoint;
        std::error_code ignored; // require_mountpoint below says what is wrong
        std::filesystem::create_directories(m.mountpoint, ignored);
    }
    if (!m.mountpoint.empty()) {
        require_mountpoint(m.mountpoint); // before the node joins the cluster
    }
    sigset_t set = block_stop_signals(); // the node's and FUSE's threads inherit the mask
    ClusterNode node(o);
    node.join();
    m.volume_label = read_volume_space(node.data_path()).label;
    if (m.mountpoint.empty()) {
        m.mountpoint = default_mountpoint(m.volume_label);
        std::error_code ignored; // require_mountpoint below says what is wrong
        std::filesystem::create_directories(m.mountpoint, ignored);
        require_mountpoint(m.mountpoint);
    }
    FuseMount mount(node.client(), node.data_path(), m);
    *inv.out << "csv node " << o.identity.node_id << " running ("
             << (node.coordinating() ? "coordinator" : "standby") << "), volume " << m.volume_label
             << " mounted at " << m.mountpoint << std::endl;
    // A signal unmounts; an unmount from outside ends run() and then wakes the waiter.
    std::thread waiter([&] {
        int signal = 0;
        sigwait(&set, &signal);
        mount.stop();
    });
    const int rc = mount.run();
    pthread_kill(waiter.native_handle(), SIGTERM); // harmless when it already took one
    waiter.join();
    if (rc != 0) {
        throw Error(ErrorCode::io, "the FUSE session at " + m.mountpoint + " ended with an error");
    }
    return 0;
}

const char* state_name(int state) {
    return state == protocol::DIRECT       ? "Direct"
           : state == protocol::REDIRECTED ? "Redirected"
                                           : "Paused";
}

// The cluster to ask: --members and the TLS options, or a registered volume (`name`; when
// empty, the only one registered).
struct ClusterAddress {
    std::map<std::uint64_t, Endpoint> members;
    TlsContext tls;
    // With --members the cluster is described, not named: the volume label the coordinator
    // must serve (a registered volume's members are that volume's already).
    std::string label;
    std::vector<Endpoint> listeners() const {
        std::vector<Endpoint> out;
        for (const auto& [id, endpoint] : members) {
            out.push_back(endpoint);
        }
        return out;
    }
};

ClusterAddress cluster_from(const po::variables_map& vm, std::string name) {
    if (vm.count("members")) {
        return {parse_members(vm["members"].as<std::string>()), tls_from(vm), name};
    }
    if (name.empty()) {
        auto all = registry_from(vm).list();
        if (all.size() != 1) {
            throw Error(ErrorCode::usage, all.empty()
                                              ? "--members is required (no volume is registered)"
                                              : "name the volume (" + std::to_string(all.size()) +
                                                    " are registered) or give --members");
        }
        name = all.front().name;
    }
    RegisteredVolume v = registered(vm, name);
    return {parse_members(v.members), tls_from(v), ""};
}

int run_status(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("volume", po::value<std::string>()->default_value(""),
                          "a registered volume (instead of --members and TLS options)")(
        "members", po::value<std::string>(), "the cluster's nodes: ID=ADDRESS:PORT,...");
    add_tls_options(options);
    add_registry_option(options);
    po::positional_options_description positional;
    positional.add("volume", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    const ClusterAddress cluster = cluster_from(vm, vm["volume"].as<std::string>());
    const auto& members = cluster.members;
    const TlsContext& tls = cluster.tls;
    Json nodes = Json::array();
    std::uint64_t coordinator = 0;
    std::string label;
    for (auto& [id, endpoint] : members) {
        protocol::NodeMessage ask;
        ask.mutable_status();
        protocol::CoordinatorMessage reply;
        try {
            request_once(endpoint, tls, ask, reply, std::chrono::seconds(5));
        } catch (const Error& e) {
            nodes.push_back({{"id", id},
                             {"endpoint", endpoint.text()},
                             {"reachable", false},
                             {"error", e.what()}});
            continue;
        }
        const auto& st = reply.status();
        if (st.coordinator()) {
            coordinator = st.node_id();
            label = st.volume_label();
        }
        nodes.push_back({{"id", st.node_id()},
                         {"endpoint", endpoint.text()},
                         {"reachable", true},
                         {"role", st.coordinator() ? "coordinator" : "node"},
                         {"state", state_name(st.state())},
                         {"lease_generation", st.lease_generation()},
                         {"redirected_bytes", st.redirected_bytes()}});
    }
    if (inv.json) {
        print_json(*inv.out,
                   Json{{"volume", label}, {"coordinator", coordinator}, {"nodes", nodes}});
    } else {
        *inv.out << "volume " << (label.empty() ? "?" : label) << ", coordinator node "
                 << coordinator << '\n';
        for (const auto& n : nodes) {
            *inv.out << "node " << n["id"].get<std::uint64_t>() << ' '
                     << n["endpoint"].get<std::string>() << ": "
                     << (n["reachable"].get<bool>()
                             ? n["role"].get<std::string>() + ", " + n["state"].get<std::string>()
                             : std::string("unreachable"))
                     << '\n';
        }
    }
    return coordinator != 0 ? 0 : exit_code_for(ErrorCode::not_found);
}

int run_move(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("volume", po::value<std::string>()->required(), "volume label")(
        "node", po::value<std::uint64_t>()->required(),
        "node id to coordinate")("members", po::value<std::string>(),
                                 "the cluster's nodes: ID=ADDRESS:PORT,... (default: the "
                                 "registered volume's)");
    add_tls_options(options);
    add_registry_option(options);
    po::positional_options_description positional;
    positional.add("volume", 1).add("node", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    const ClusterAddress cluster = cluster_from(vm, vm["volume"].as<std::string>());
    const std::uint64_t target = vm["node"].as<std::uint64_t>();
    const std::uint64_t from = request_move(cluster.listeners(), cluster.tls, target,
                                            std::chrono::seconds(30), cluster.label);
    if (inv.json) {
        print_json(
            *inv.out,
            Json{{"volume", vm["volume"].as<std::string>()}, {"from", from}, {"to", target}});
    } else {
        *inv.out << "moved " << vm["volume"].as<std::string>() << " from node " << from
                 << " to node " << target << '\n';
    }
    return 0;
}

std::string utc_name(std::uint64_t unix_ns) {
    const std::time_t t = static_cast<std::time_t>(unix_ns / 1000000000u);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &tm);
    return text;
}

// Takes, lists or releases snapshots through the cluster's coordinator.
int run_snapshot(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("volume", po::value<std::string>()->required(),
                          "a registered volume (or any name with --members)")(
        "name", po::value<std::string>(),
        "snapshot name (default: the UTC time, e.g. 20261205T150405Z)")(
        "list", po::bool_switch(), "list the volume's snapshots")(
        "release", po::bool_switch(), "release snapshot NAME (frees the blocks only it holds)")(
        "members", po::value<std::string>(),
        "the cluster's nodes: ID=ADDRESS:PORT,... (default: the registered volume's)");
    add_tls_options(options);
    add_registry_option(options);
    po::positional_options_description positional;
    positional.add("volume", 1).add("name", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    const std::string volume = vm["volume"].as<std::string>();
    const bool list = vm["list"].as<bool>();
    const bool release = vm["release"].as<bool>();
    if (list && release) {
        throw Error(ErrorCode::usage, "--list and --release exclude each other");
    }
    if (release && !vm.count("name")) {
        throw Error(ErrorCode::usage, "--release needs the snapshot's NAME");
    }
    const ClusterAddress cluster = cluster_from(vm, volume);
    protocol::NodeMessage ask;
    auto* request = ask.mutable_snapshot();
    const std::string name =
        vm.count("name") ? vm["name"].as<std::string>() : utc_name(now_unix_ns());
    request->set_op(list      ? protocol::SnapshotRequest::LIST
                    : release ? protocol::SnapshotRequest::RELEASE
                              : protocol::SnapshotRequest::CREATE);
    request->set_name(name);
    protocol::CoordinatorMessage reply;
    const auto started = std::chrono::steady_clock::now();
    const std::uint64_t coordinator = request_coordinator(
        cluster.listeners(), cluster.tls, ask, reply, std::chrono::seconds(60), cluster.label);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    if (reply.has_error()) {
        throw Error(static_cast<ErrorCode>(reply.error().code()),
                    "node " + std::to_string(coordinator) + " refused: " + reply.error().message());
    }
    const std::string root = "/" + std::string(kSnapshotDirectory) + "/";
    if (list) {
        Json entries = Json::array();
        for (const auto& e : reply.list().entries()) {
            const bool pending = (e.flags() & inode_snapshot_pending) != 0;
            entries.push_back({{"name", e.name()},
                               {"path", root + e.name()},
                               {"taken_unix_ns", e.mtime_unix_ns()},
                               {"state", pending ? "pending" : "ready"}});
        }
        if (inv.json) {
            print_json(*inv.out, Json{{"volume", volume}, {"snapshots", entries}});
        } else {
            if (entries.empty()) {
                *inv.out << "no snapshots of " << volume << '\n';
            }
            for (const auto& e : entries) {
                *inv.out << e["name"].get<std::string>() << "\t" << e["path"].get<std::string>()
                         << "\ttaken " << utc_name(e["taken_unix_ns"].get<std::uint64_t>()) << "\t"
                         << e["state"].get<std::string>() << '\n';
            }
        }
        return 0;
    }
    if (inv.json) {
        print_json(*inv.out, Json{{"volume", volume},
                                  {"snapshot", name},
                                  {"path", root + name},
                                  {release ? "released" : "taken", true},
                                  {"coordinator", coordinator},
                                  {"elapsed_ms", ms}});
    } else if (release) {
        *inv.out << "released snapshot " << name << " of " << volume << '\n';
    } else {
        *inv.out << "snapshot " << name << " of " << volume << " taken in " << ms
                 << " ms; read it at " << root << name << " on any node\n";
    }
    return 0;
}

// Registers a volume on this host under its label.
int run_add(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("device", po::value<std::string>()->required(),
                          "this host's path to the LUN")(
        "id", po::value<std::uint64_t>()->required(),
        "this host's node id (non-zero)")("members", po::value<std::string>()->required(),
                                          "every node: ID=ADDRESS:PORT,... (this one included)")(
        "name", po::value<std::string>(), "register under this name (default: the volume label)")(
        "mountpoint", po::value<std::string>(),
        "where `godwit csv mount NAME` shows it (default /ClusterStorage/<name>)")(
        "lease-ms", po::value<std::uint32_t>()->default_value(10000), "coordinator lease")(
        "map-lease-ms", po::value<std::uint32_t>()->default_value(3000),
        "block-map lease")("replace", po::bool_switch(), "replace a registration of the same name")(
        "buffered", po::bool_switch(), "do not use O_DIRECT to read the label");
    add_tls_options(options);
    add_registry_option(options);
    po::positional_options_description positional;
    positional.add("device", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    RegisteredVolume v;
    v.device = std::filesystem::absolute(vm["device"].as<std::string>()).string();
    v.node_id = vm["id"].as<std::uint64_t>();
    const auto members = parse_members(vm["members"].as<std::string>());
    if (v.node_id == 0 || members.count(v.node_id) == 0) {
        throw Error(ErrorCode::usage, "--id must be non-zero and one of --members");
    }
    v.members = vm["members"].as<std::string>();
    v.plaintext = vm["plaintext"].as<bool>();
    tls_from(vm); // the credentials load (or it says why not) before they are registered
    if (!v.plaintext) {
        v.ca = std::filesystem::absolute(vm["ca"].as<std::string>()).string();
        v.cert = std::filesystem::absolute(vm["cert"].as<std::string>()).string();
        v.key = std::filesystem::absolute(vm["key"].as<std::string>()).string();
    }
    // The device must hold a volume: its label names the registration.
    auto device = open_device(v.device, false, vm["buffered"].as<bool>());
    const std::string label = read_volume_space(*device).label;
    v.name = vm.count("name") ? vm["name"].as<std::string>() : label;
    if (v.name.empty()) {
        throw Error(ErrorCode::usage, v.device + " holds a volume without a label: give --name");
    }
    v.mountpoint =
        vm.count("mountpoint") ? vm["mountpoint"].as<std::string>() : default_mountpoint(v.name);
    v.lease_ms = vm["lease-ms"].as<std::uint32_t>();
    v.map_lease_ms = vm["map-lease-ms"].as<std::uint32_t>();
    VolumeRegistry registry = registry_from(vm);
    registry.add(v, vm["replace"].as<bool>());
    if (inv.json) {
        print_json(*inv.out, Json{{"added", v.name},
                                  {"label", label},
                                  {"device", v.device},
                                  {"node_id", v.node_id},
                                  {"mountpoint", v.mountpoint},
                                  {"registry", registry.dir().string()}});
    } else {
        *inv.out << "added volume " << v.name << " (" << v.device << ", node " << v.node_id
                 << ", mount at " << v.mountpoint << ")\n";
    }
    return 0;
}

int run_list(Invocation& inv) {
    po::options_description options("Options");
    add_registry_option(options);
    po::variables_map vm;
    if (!parse_options(inv, options, {}, vm)) {
        return 0;
    }
    const auto volumes = registry_from(vm).list();
    if (inv.json) {
        Json list = Json::array();
        for (const auto& v : volumes) {
            list.push_back({{"name", v.name},
                            {"device", v.device},
                            {"node_id", v.node_id},
                            {"members", v.members},
                            {"tls", !v.plaintext},
                            {"mountpoint", v.mountpoint},
                            {"device_present", std::filesystem::exists(v.device)}});
        }
        print_json(*inv.out, Json{{"volumes", list}});
        return 0;
    }
    if (volumes.empty()) {
        *inv.out << "no volumes registered (godwit csv add DEVICE --id N --members ...)\n";
    }
    for (const auto& v : volumes) {
        *inv.out << v.name << "  " << v.device
                 << (std::filesystem::exists(v.device) ? "" : " (missing)") << "  node "
                 << v.node_id << "  " << v.mountpoint << "  " << v.members
                 << (v.plaintext ? "  plaintext" : "") << '\n';
    }
    return 0;
}

int run_remove(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("volume", po::value<std::string>()->required(), "registered name");
    add_registry_option(options);
    po::positional_options_description positional;
    positional.add("volume", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    registry_from(vm).remove(vm["volume"].as<std::string>());
    if (inv.json) {
        print_json(*inv.out, Json{{"removed", vm["volume"].as<std::string>()}});
    } else {
        *inv.out << "removed volume " << vm["volume"].as<std::string>()
                 << " from this host's registry (the volume itself is untouched)\n";
    }
    return 0;
}

const Registration format_registration{{"csv", "format", "DEVICE [--label L] [--size SIZE]",
                                        "create an empty cluster shared volume", run_format}};
const Registration check_registration{
    {"csv", "check", "DEVICE", "verify a cluster shared volume (exit 0 when clean)", run_check}};
const Registration ls_registration{
    {"csv", "ls", "DEVICE [PATH]", "list a directory of a cluster shared volume", run_ls}};

const Registration add_registration{
    {"csv", "add",
     "DEVICE --id N --members ID=ADDR:PORT,... (--ca --cert --key | --plaintext) [--mountpoint]",
     "register a cluster shared volume on this host (then name it in mount/node/status/move)",
     run_add}};
const Registration list_registration{
    {"csv", "list", "", "the volumes registered on this host", run_list}};
const Registration remove_registration{
    {"csv", "remove", "VOLUME", "forget a registered volume (its data is untouched)", run_remove}};

const Registration node_registration{
    {"csv", "node",
     "(DEVICE --id N --members ID=ADDR:PORT,... (--ca --cert --key | --plaintext) | VOLUME) "
     "[--coordinator]",
     "run one node of a cluster shared volume (foreground)", run_node}};
const Registration mount_registration{
    {"csv", "mount",
     "(DEVICE [MOUNTPOINT] --id N --members ID=ADDR:PORT,... (--ca --cert --key | --plaintext)"
     " | VOLUME) [--coordinator]",
     "run a node with its volume mounted through FUSE (foreground, until SIGTERM or umount)",
     run_mount}};
const Registration status_registration{
    {"csv", "status", "[VOLUME] | --members ID=ADDR:PORT,... (--ca --cert --key | --plaintext)",
     "each node's role and I/O state (Direct/Redirected/Paused)", run_status}};
const Registration move_registration{
    {"csv", "move", "VOLUME NODE [--members ID=ADDR:PORT,... (--ca --cert --key | --plaintext)]",
     "move the coordinator of a volume to another node without stopping I/O", run_move}};
const Registration snapshot_registration{
    {"csv", "snapshot",
     "VOLUME [NAME] [--list | --release] [--members ID=ADDR:PORT,... (--ca --cert --key | "
     "--plaintext)]",
     "take a point-in-time copy-on-write snapshot of a volume (read it at "
     "/.snapshots/NAME), list or release snapshots",
     run_snapshot}};

} // namespace
} // namespace godwit::cli
