// `godwit vm create|start|stop|kill|list|show|console|delete`: the host's VMs, owned by
// godwitd (docs/vm-management.md). Commands that change a VM's state wait until the change
// happened (or failed) unless --no-wait, so scripts can chain them.
#include "../cli.hpp"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iterator>
#include <ostream>
#include <sstream>
#include <thread>

#include "godwit/control_client.hpp"
#include "godwit/vmm/vm_definition.hpp"
#include "vm_client.hpp"

namespace godwit::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

ErrorCode error_code_from(int code) {
    if ((code >= 1 && code <= 10) || code == static_cast<int>(ErrorCode::internal)) {
        return static_cast<ErrorCode>(code);
    }
    return ErrorCode::failed;
}

std::string describe_result(const control::VmResult& r) {
    return r.kind() + ": " + r.message();
}

std::string format_uptime(std::uint64_t ms) {
    std::uint64_t s = ms / 1000;
    std::ostringstream out;
    if (s >= 3600) {
        out << s / 3600 << "h" << std::setw(2) << std::setfill('0') << (s % 3600) / 60 << "m";
    } else if (s >= 60) {
        out << s / 60 << "m" << std::setw(2) << std::setfill('0') << s % 60 << "s";
    } else {
        out << std::fixed << std::setprecision(1) << static_cast<double>(ms) / 1000.0 << "s";
    }
    return out.str();
}

std::string format_time(std::int64_t unix_ms) {
    std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    std::ostringstream out;
    out << std::put_time(&tm, "%Y-%m-%dT%H:%M:%SZ");
    return out.str();
}

bool is_active(const control::VmInfo& info) {
    return info.state() == "starting" || info.state() == "running" || info.state() == "stopping";
}

Json result_json(const control::VmInfo& info) {
    if (!info.has_result()) {
        return nullptr;
    }
    const control::VmResult& r = info.last_result();
    Json out{{"kind", r.kind()}, {"message", r.message()}};
    if (r.kind() == "debug_exit") {
        out["exit_code"] = r.exit_code();
    }
    if (r.kind() == "outside_ram") {
        out["address"] = r.address();
    }
    if (r.kind() == "failed") {
        out["error_code"] = r.error_code();
    }
    return out;
}

Json vm_json(const control::VmInfo& info) {
    Json definition = Json::parse(info.definition_json(), nullptr, false);
    Json out{{"name", info.name()},
             {"state", info.state()},
             {"pid", info.pid() ? Json(info.pid()) : Json(nullptr)},
             {"definition", definition},
             {"started_at", info.started_at_unix_ms() ? Json(format_time(info.started_at_unix_ms()))
                                                      : Json(nullptr)},
             {"uptime_seconds", static_cast<double>(info.uptime_ms()) / 1000.0},
             {"last_result", result_json(info)},
             {"console_log", info.console_log()}};
    if (!info.save_error().empty()) {
        out["save_error"] = info.save_error();
    }
    return out;
}

void print_vm(std::ostream& out, const control::VmInfo& info) {
    Json d = Json::parse(info.definition_json(), nullptr, false);
    auto field = [&](const char* key) -> std::string {
        if (!d.is_object() || !d.contains(key)) {
            return "?";
        }
        return d[key].is_string() ? d[key].get<std::string>() : d[key].dump();
    };
    out << "name:         " << info.name() << '\n' << "state:        " << info.state() << '\n';
    if (info.pid()) {
        out << "worker pid:   " << info.pid() << '\n';
    }
    out << "vCPUs:        " << field("vcpus") << '\n'
        << "memory:       " << field("memory_mib") << " MiB\n"
        << "kernel:       " << field("kernel") << '\n'
        << "cmdline:      " << field("cmdline") << '\n';
    if (d.is_object() && d.contains("modules")) {
        for (const auto& m : d["modules"]) {
            out << "module:       " << m.value("path", "?") << ' ' << m.value("cmdline", "")
                << '\n';
        }
    }
    if (info.started_at_unix_ms()) {
        out << "started:      " << format_time(info.started_at_unix_ms()) << '\n'
            << (is_active(info) ? "uptime:       " : "ran for:      ")
            << format_uptime(info.uptime_ms()) << '\n';
    }
    out << "last result:  " << (info.has_result() ? describe_result(info.last_result()) : "-")
        << '\n'
        << "console log:  " << info.console_log() << '\n';
}

// Polls the VM until `done(info)` or the deadline; returns the last state seen.
template <typename Predicate>
control::VmInfo wait_for(const po::variables_map& vm, const std::string& name, double seconds,
                         const char* waiting_for, Predicate done) {
    auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(seconds));
    for (;;) {
        control::VmInfo info = show(vm, name);
        if (done(info)) {
            return info;
        }
        if (Clock::now() > deadline) {
            throw Error(ErrorCode::timeout,
                        "VM '" + name + "' is still " + info.state() + " after " +
                            std::to_string(static_cast<int>(seconds)) + " s of waiting for it " +
                            waiting_for + " (`godwit vm show " + name + "`)");
        }
        // Short: a start or stop takes well under a second on real hardware, and under
        // emulation the root's clock crawls while a guest runs, so long sleeps cost minutes.
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

void print_outcome(Invocation& inv, const control::VmInfo& info, const std::string& human) {
    if (inv.json) {
        print_json(*inv.out, vm_json(info));
    } else {
        *inv.out << human << '\n';
    }
}

// --- create -----------------------------------------------------------------------------

std::string absolute(const std::string& path, const fs::path& base) {
    if (path.empty()) {
        return path;
    }
    fs::path p(path);
    return (p.is_absolute() ? p : base / p).lexically_normal().string();
}

int run_create(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("name", po::value<std::string>(),
                          "the VM's name (letters, digits, . _ -)")(
        "kernel", po::value<std::string>(), "Multiboot1/2 kernel (ELF) the VM boots")(
        "memory", po::value<std::uint64_t>(), "guest RAM in MiB")(
        "vcpus", po::value<unsigned>()->default_value(1), "virtual CPUs (1..8)")(
        "cmdline", po::value<std::string>()->default_value(""),
        "kernel command line")("module", po::value<std::vector<std::string>>()->composing(),
                               "boot module: 'FILE[ CMDLINE]' (repeatable)")(
        "file", po::value<std::string>(),
        "create from a VM definition file (docs/vm-definition.md) instead; relative paths in it "
        "are relative to the file");
    add_socket_option(options);
    po::positional_options_description positional;
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    vmm::VmDefinition def;
    if (vm.count("file")) {
        for (const char* conflicting : {"kernel", "memory", "module"}) {
            if (vm.count(conflicting)) {
                throw Error(ErrorCode::usage, std::string("godwit vm create: --file and --") +
                                                  conflicting + " do not go together");
            }
        }
        fs::path file = vm["file"].as<std::string>();
        def = vmm::load_vm_definition(file);
        fs::path base = fs::absolute(file).parent_path();
        def.kernel = absolute(def.kernel, base);
        for (auto& m : def.modules) {
            m.path = absolute(m.path, base);
        }
        if (vm.count("name")) {
            def.name = vm["name"].as<std::string>();
        }
    } else {
        for (const char* required : {"name", "kernel", "memory"}) {
            if (!vm.count(required)) {
                throw Error(
                    ErrorCode::usage,
                    std::string("godwit vm create: --") + required +
                        " is required (or --file DEFINITION; see `godwit vm create --help`)");
            }
        }
        fs::path cwd = fs::current_path();
        def.name = vm["name"].as<std::string>();
        def.kernel = absolute(vm["kernel"].as<std::string>(), cwd);
        def.memory_mib = vm["memory"].as<std::uint64_t>();
        def.vcpus = vm["vcpus"].as<unsigned>();
        def.cmdline = vm["cmdline"].as<std::string>();
        if (vm.count("module")) {
            for (const std::string& m : vm["module"].as<std::vector<std::string>>()) {
                auto space = m.find(' ');
                def.modules.push_back({absolute(m.substr(0, space), cwd),
                                       space == std::string::npos ? "" : m.substr(space + 1)});
            }
        }
    }
    // The daemon parses it again with the schema's checks (name, ranges): one set of rules.
    control::Request request;
    request.mutable_vm_create()->set_definition_json(vmm::vm_definition_to_json(def));
    control::VmInfo info = expect_vm(call(vm, request), "vm create");
    print_outcome(inv, info,
                  "VM '" + info.name() + "' created (" + std::to_string(def.vcpus) + " vCPU, " +
                      std::to_string(def.memory_mib) + " MiB, kernel " + def.kernel +
                      "); start it with `godwit vm start " + info.name() + "`");
    return 0;
}

// --- start / stop / kill ----------------------------------------------------------------

int run_start(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("timeout", po::value<double>()->default_value(120),
                          "seconds to wait for the VM to run")("no-wait",
                                                               "return once the worker is started");
    po::variables_map vm;
    std::string name;
    if (!parse_named(inv, options, vm, name)) {
        return 0;
    }
    control::Request request;
    request.mutable_vm_start()->set_name(name);
    control::VmInfo info = expect_vm(call(vm, request), "vm start");
    if (!vm.count("no-wait")) {
        info = wait_for(vm, name, vm["timeout"].as<double>(), "to run",
                        [](const control::VmInfo& i) { return i.state() != "starting"; });
        if (info.state() == "stopped" && info.has_result() &&
            info.last_result().kind() == "failed") {
            throw Error(error_code_from(info.last_result().error_code()),
                        "VM '" + name + "' did not start: " + info.last_result().message());
        }
    }
    std::string human =
        "VM '" + name + "' " + info.state() + " (worker pid " + std::to_string(info.pid()) + ")";
    if (info.state() == "stopped") {
        human = "VM '" + name + "' started and has already stopped: " +
                (info.has_result() ? describe_result(info.last_result()) : "no result");
    }
    print_outcome(inv, info, human);
    return 0;
}

int run_stop_or_kill(Invocation& inv, bool kill) {
    po::options_description options("Options");
    if (!kill) {
        options.add_options()("timeout", po::value<unsigned>()->default_value(0),
                              "seconds between SIGTERM and SIGKILL (0: godwitd's --stop-timeout, "
                              "30 s by default)");
    }
    options.add_options()("no-wait", "return once the request is sent");
    po::variables_map vm;
    std::string name;
    if (!parse_named(inv, options, vm, name)) {
        return 0;
    }
    control::Request request;
    unsigned timeout = 0;
    if (kill) {
        request.mutable_vm_kill()->set_name(name);
    } else {
        timeout = vm["timeout"].as<unsigned>();
        request.mutable_vm_stop()->set_name(name);
        request.mutable_vm_stop()->set_timeout_seconds(timeout);
    }
    control::VmInfo info = expect_vm(call(vm, request), kill ? "vm kill" : "vm stop");
    if (!vm.count("no-wait")) {
        // Past the daemon's SIGKILL escalation; a killed worker is reaped at once.
        double seconds = kill ? 30.0 : (timeout ? timeout : 270.0) + 30.0;
        info = wait_for(vm, name, seconds, "to stop",
                        [](const control::VmInfo& i) { return !is_active(i); });
    }
    print_outcome(inv, info,
                  "VM '" + name + "' " + info.state() +
                      (info.has_result() && !is_active(info)
                           ? ": " + describe_result(info.last_result())
                           : ""));
    return 0;
}

int run_stop(Invocation& inv) {
    return run_stop_or_kill(inv, false);
}
int run_kill(Invocation& inv) {
    return run_stop_or_kill(inv, true);
}

// --- save -------------------------------------------------------------------------------

int run_save(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("file", po::value<std::string>(), "where to save it (must not exist)")(
        "timeout", po::value<double>()->default_value(600), "seconds to wait for the save");
    po::variables_map vm;
    std::string name;
    if (!parse_named(inv, options, vm, name, "file")) {
        return 0;
    }
    if (!vm.count("file")) {
        throw Error(ErrorCode::usage, "godwit vm save: FILE is missing (godwit vm save NAME FILE)");
    }
    std::string file = absolute(vm["file"].as<std::string>(), fs::current_path());
    control::Request request;
    request.mutable_vm_save()->set_name(name);
    request.mutable_vm_save()->set_path(file);
    expect_vm(call(vm, request), "vm save");
    control::VmInfo info =
        wait_for(vm, name, vm["timeout"].as<double>(), "to be saved",
                 [](const control::VmInfo& i) { return !is_active(i) || !i.save_error().empty(); });
    if (!info.save_error().empty()) {
        throw Error(ErrorCode::failed,
                    "VM '" + name + "' was not saved (it keeps running): " + info.save_error());
    }
    if (!info.has_result() || info.last_result().message() != "saved to " + file) {
        throw Error(ErrorCode::failed,
                    "VM '" + name + "' stopped without being saved: " +
                        (info.has_result() ? describe_result(info.last_result()) : "no result"));
    }
    print_outcome(inv, info, "VM '" + name + "' saved to " + file + " and stopped");
    return 0;
}

int run_restore(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("file", po::value<std::string>(), "a saved VM (godwit vm save)")(
        "name", po::value<std::string>(), "register it under this name (default: its own)")(
        "timeout", po::value<double>()->default_value(120), "seconds to wait for it to run");
    add_socket_option(options);
    po::positional_options_description positional;
    positional.add("file", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    if (!vm.count("file")) {
        throw Error(ErrorCode::usage, "godwit vm restore: FILE is missing (godwit vm restore FILE "
                                      "[--name N])");
    }
    std::string file = absolute(vm["file"].as<std::string>(), fs::current_path());
    control::Request request;
    request.mutable_vm_restore()->set_path(file);
    if (vm.count("name")) {
        request.mutable_vm_restore()->set_name(vm["name"].as<std::string>());
    }
    control::VmInfo info = expect_vm(call(vm, request), "vm restore");
    const std::string name = info.name();
    info = wait_for(vm, name, vm["timeout"].as<double>(), "to run",
                    [](const control::VmInfo& i) { return i.state() != "starting"; });
    if (info.state() == "stopped" && info.has_result() && info.last_result().kind() == "failed") {
        throw Error(error_code_from(info.last_result().error_code()),
                    "VM '" + name + "' was not restored: " + info.last_result().message());
    }
    print_outcome(inv, info,
                  "VM '" + name + "' restored from " + file + ", " + info.state() +
                      " (worker pid " + std::to_string(info.pid()) + ")");
    return 0;
}

// --- list / show / delete ---------------------------------------------------------------

int run_list(Invocation& inv) {
    po::options_description options("Options");
    add_socket_option(options);
    po::positional_options_description positional;
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    control::Request request;
    request.mutable_vm_list();
    control::Response response = call(vm, request);
    if (!response.has_vm_list()) {
        throw Error(ErrorCode::protocol, "godwitd answered vm list with something else");
    }
    if (inv.json) {
        Json vms = Json::array();
        for (const auto& info : response.vm_list().vms()) {
            vms.push_back(vm_json(info));
        }
        print_json(*inv.out, Json{{"vms", vms}});
        return 0;
    }
    if (response.vm_list().vms().empty()) {
        *inv.out << "no VMs (create one with `godwit vm create`)\n";
        return 0;
    }
    *inv.out << std::left << std::setw(20) << "NAME" << std::setw(10) << "STATE" << std::setw(8)
             << "PID" << std::setw(6) << "VCPUS" << std::setw(10) << "MEMORY" << std::setw(10)
             << "UPTIME"
             << "LAST RESULT\n";
    for (const auto& info : response.vm_list().vms()) {
        Json d = Json::parse(info.definition_json(), nullptr, false);
        *inv.out << std::left << std::setw(20) << info.name() << std::setw(10) << info.state()
                 << std::setw(8) << (info.pid() ? std::to_string(info.pid()) : "-") << std::setw(6)
                 << (d.is_object() ? d.value("vcpus", 0) : 0) << std::setw(10)
                 << (std::to_string(d.is_object() ? d.value("memory_mib", 0) : 0) + " MiB")
                 << std::setw(10)
                 << (info.started_at_unix_ms() ? format_uptime(info.uptime_ms()) : "-")
                 << (info.has_result() ? describe_result(info.last_result()) : "-") << '\n';
    }
    return 0;
}

int run_show(Invocation& inv) {
    po::options_description options("Options");
    po::variables_map vm;
    std::string name;
    if (!parse_named(inv, options, vm, name)) {
        return 0;
    }
    control::VmInfo info = show(vm, name);
    if (inv.json) {
        print_json(*inv.out, vm_json(info));
    } else {
        print_vm(*inv.out, info);
    }
    return 0;
}

int run_delete(Invocation& inv) {
    po::options_description options("Options");
    po::variables_map vm;
    std::string name;
    if (!parse_named(inv, options, vm, name)) {
        return 0;
    }
    control::Request request;
    request.mutable_vm_delete()->set_name(name);
    control::VmInfo info = expect_vm(call(vm, request), "vm delete");
    if (inv.json) {
        print_json(*inv.out, Json{{"deleted", vm_json(info)}});
    } else {
        *inv.out << "VM '" << name << "' deleted (definition and console log removed)\n";
    }
    return 0;
}

// --- console ----------------------------------------------------------------------------

int run_console(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("follow,f", "keep printing new output until the VM stops")(
        "from", po::value<std::uint64_t>()->default_value(0), "byte offset in the log to start at");
    po::variables_map vm;
    std::string name;
    if (!parse_named(inv, options, vm, name)) {
        return 0;
    }
    bool follow = vm.count("follow") != 0;
    if (follow && inv.json) {
        throw Error(ErrorCode::usage, "godwit vm console: --follow streams text; it has no --json");
    }
    std::uint64_t position = vm["from"].as<std::uint64_t>();
    std::string all;
    for (;;) {
        control::Request request;
        request.mutable_vm_console()->set_name(name);
        request.mutable_vm_console()->set_from(position);
        control::Response response = call(vm, request);
        if (!response.has_vm_console()) {
            throw Error(ErrorCode::protocol, "godwitd answered vm console with something else");
        }
        const control::VmConsole& chunk = response.vm_console();
        if (inv.json) {
            all += chunk.text();
        } else {
            *inv.out << chunk.text() << std::flush;
        }
        position = chunk.start() + chunk.text().size();
        bool more_now = position < chunk.end();
        if (more_now) {
            continue;
        }
        if (!follow || !chunk.active()) {
            if (inv.json) {
                // Console bytes need not be UTF-8: invalid sequences become U+FFFD.
                Json text =
                    Json::parse(Json(all).dump(-1, ' ', false, Json::error_handler_t::replace));
                print_json(*inv.out, Json{{"name", name},
                                          {"end", position},
                                          {"active", chunk.active()},
                                          {"text", text}});
            }
            return 0;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

const Registration create_registration{
    {"vm", "create",
     "--name NAME --kernel FILE --memory MiB [--vcpus N] [--cmdline S] [--module 'FILE[ ARGS]']... "
     "| --file DEFINITION.json",
     "define a VM (stored by godwitd; the kernel is checked by loading it)", run_create}};
const Registration start_registration{
    {"vm", "start", "NAME [--timeout SECONDS] [--no-wait]",
     "start a VM in its own worker process and wait until it runs", run_start}};
const Registration stop_registration{
    {"vm", "stop", "NAME [--timeout SECONDS] [--no-wait]",
     "stop a VM gracefully (SIGTERM to its worker, SIGKILL after the timeout)", run_stop}};
const Registration save_registration{
    {"vm", "save", "NAME FILE [--timeout SECONDS]",
     "save a running VM's memory and state to FILE and stop it (quick migration)", run_save}};
const Registration restore_registration{
    {"vm", "restore", "FILE [--name N] [--timeout SECONDS]",
     "register and start the VM saved in FILE (godwit vm save), running on where it stopped",
     run_restore}};
const Registration kill_registration{
    {"vm", "kill", "NAME [--no-wait]", "kill a VM's worker at once (SIGKILL)", run_kill}};
const Registration list_registration{
    {"vm", "list", "", "the host's VMs with state, uptime and last result", run_list}};
const Registration show_registration{
    {"vm", "show", "NAME", "a VM's definition, state, worker pid, uptime and last result",
     run_show}};
const Registration console_registration{
    {"vm", "console", "NAME [--follow] [--from OFFSET]",
     "a VM's serial console (COM1) output; --follow streams until it stops", run_console}};
const Registration delete_registration{
    {"vm", "delete", "NAME", "remove a stopped VM's definition and logs", run_delete}};

} // namespace
} // namespace godwit::cli
