// `godwit host info|log`: the hypervisor's view of this host and its console log, through
// godwitd.
#include "../cli.hpp"

#include <ostream>

#include "godwit/control_client.hpp"

namespace godwit::cli {
namespace {

Json host_info_json(const control::HostInfo& info) {
    Json cpus = Json::array();
    for (const auto& c : info.cpus()) {
        cpus.push_back({{"index", c.index()},
                        {"apic_id", c.apic_id()},
                        {"online", c.online()},
                        {"vmx_on", c.vmx_on()},
                        {"runs_root", c.runs_root()},
                        {"exits", c.exits()}});
    }
    Json features = Json::array();
    for (const auto& f : info.vmx_features()) {
        features.push_back(f);
    }
    return Json{
        {"hostname", info.hostname()},
        {"daemon_version", info.daemon_version()},
        {"hypervisor",
         {{"build", info.hypervisor_build()},
          {"abi", std::to_string(info.abi_major()) + "." + std::to_string(info.abi_minor())}}},
        {"cpu_count", info.cpu_count()},
        {"cpus", cpus},
        {"vmx", {{"basic", info.vmx_basic()}, {"features", features}}},
        {"memory",
         {{"total_bytes", info.memory_total_bytes()},
          {"hypervisor_bytes", info.memory_hypervisor_bytes()},
          {"hypervisor_free_bytes", info.memory_hypervisor_free_bytes()},
          {"root_bytes", info.memory_root_bytes()},
          {"guest_bytes", info.memory_guest_bytes()}}}};
}

void print_host_info(std::ostream& out, const control::HostInfo& info) {
    out << "host:        " << info.hostname() << '\n'
        << "hypervisor:  godwit " << info.hypervisor_build() << " (ABI " << info.abi_major() << '.'
        << info.abi_minor() << ")\n"
        << "daemon:      godwitd " << info.daemon_version() << '\n'
        << "CPUs:        " << info.cpu_count() << '\n';
    for (const auto& c : info.cpus()) {
        out << "  cpu " << c.index() << ": apic " << c.apic_id()
            << (c.online() ? " online" : " offline") << (c.vmx_on() ? " vmx" : "")
            << (c.runs_root() ? " root" : "") << ", " << c.exits() << " exits\n";
    }
    out << "VMX:        ";
    for (const auto& f : info.vmx_features()) {
        out << ' ' << f;
    }
    out << '\n'
        << "memory:      " << format_bytes(info.memory_total_bytes()) << " total, "
        << format_bytes(info.memory_root_bytes()) << " root, "
        << format_bytes(info.memory_guest_bytes()) << " guests, "
        << format_bytes(info.memory_hypervisor_bytes()) << " hypervisor ("
        << format_bytes(info.memory_hypervisor_free_bytes()) << " free)\n";
}

int run_host_info(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()(
        "socket", po::value<std::string>()->default_value(control::socket_path_from_environment()),
        "godwitd's control socket (also $GODWIT_SOCKET)");
    po::positional_options_description positional;
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    control::Request request;
    request.mutable_host_info();
    control::Response response = control::call(vm["socket"].as<std::string>(), request);
    if (!response.has_host_info()) {
        throw Error(ErrorCode::protocol, "godwitd answered host info with something else");
    }
    if (inv.json) {
        print_json(*inv.out, host_info_json(response.host_info()));
    } else {
        print_host_info(*inv.out, response.host_info());
    }
    return 0;
}

int run_host_log(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()(
        "socket", po::value<std::string>()->default_value(control::socket_path_from_environment()),
        "godwitd's control socket (also $GODWIT_SOCKET)")(
        "from", po::value<std::uint64_t>()->default_value(0),
        "console position to start at (bytes since the hypervisor booted; the hypervisor keeps "
        "the last 64 KiB)");
    po::positional_options_description positional;
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    control::Request request;
    request.mutable_host_log()->set_from(vm["from"].as<std::uint64_t>());
    control::Response response = control::call(vm["socket"].as<std::string>(), request);
    if (!response.has_host_log()) {
        throw Error(ErrorCode::protocol, "godwitd answered host log with something else");
    }
    const control::HostLog& log = response.host_log();
    if (inv.json) {
        print_json(*inv.out, Json{{"start", log.start()},
                                  {"end", log.end_of_log()},
                                  {"lost_bytes", log.start() - vm["from"].as<std::uint64_t>()},
                                  {"text", log.text()}});
    } else {
        *inv.out << log.text();
    }
    return 0;
}

const Registration registration{{"host", "info", "[--socket PATH]",
                                 "hypervisor version, CPUs, VMX features and memory of this host",
                                 run_host_info}};
const Registration log_registration{
    {"host", "log", "[--from POSITION] [--socket PATH]",
     "the hypervisor's console log (its last 64 KiB), read through hypercalls", run_host_log}};

} // namespace
} // namespace godwit::cli
