// `godwit vm migrate|move|migrate-cancel|migrate-status`: moving a running VM to another
// Godwit host (docs/live-migration.md). godwitd passes the request to the VM's worker, which
// streams the VM to the destination's migration listener; this command follows the
// migration's status with a progress bar and ends with its summary.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "../cli.hpp"
#include "godwit/output.hpp"
#include "vm_client.hpp"

namespace godwit::cli {
namespace {

using Clock = std::chrono::steady_clock;

// How often the status is polled (the worker updates it about 4 times a second).
constexpr auto poll_interval = std::chrono::milliseconds(200);

std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) {
    interrupted.store(true);
}

control::VmMigration expect_migration(const control::Response& response, const char* what) {
    if (!response.has_vm_migration()) {
        throw Error(ErrorCode::protocol,
                    std::string("godwitd answered ") + what + " with something else");
    }
    return response.vm_migration();
}

control::VmMigration status_of(const po::variables_map& vm, const std::string& name) {
    control::Request request;
    request.mutable_vm_migration_status()->set_name(name);
    return expect_migration(call(vm, request), "vm migrate-status");
}

bool in_flight(const control::VmMigration& m) {
    return m.state() == "starting" || m.state() == "running";
}

Json parse_or_null(const std::string& text) {
    return text.empty() ? Json(nullptr) : Json::parse(text, nullptr, false);
}

Json migration_json(const control::VmMigration& m) {
    return Json{{"name", m.name()},
                {"destination", m.destination()},
                {"live", m.live()},
                {"state", m.state()},
                {"progress", parse_or_null(m.progress_json())},
                {"report", parse_or_null(m.report_json())},
                {"error", m.error().empty() ? Json(nullptr) : Json(m.error())}};
}

std::string fixed(double value, int digits) {
    std::ostringstream out;
    out << std::fixed << std::setprecision(digits) << value;
    return out.str();
}

// One line: [#####.....]  42%  pass 3  12.3 MiB/s  1.2 MiB left  downtime ~80 ms
class ProgressBar {
  public:
    explicit ProgressBar(std::ostream& err) : err_(err), tty_(::isatty(STDERR_FILENO) == 1) {}

    void show(const control::VmMigration& m) {
        Json p = parse_or_null(m.progress_json());
        if (!p.is_object()) {
            return;
        }
        // The engine's percent never goes backwards; the bar keeps that promise even if a
        // status were read out of order.
        percent_ = std::max(percent_, p.value("percent", 0.0));
        std::string phase = p.value("phase", std::string());
        std::uint64_t left = p.value("pages_remaining", std::uint64_t{0}) * 4096;
        constexpr int width = 30;
        int filled = std::clamp(static_cast<int>(percent_ * width / 100.0), 0, width);
        std::ostringstream line;
        line << '[' << std::string(static_cast<std::size_t>(filled), '#')
             << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << std::setw(3)
             << static_cast<int>(percent_) << "%  " << phase << " pass " << p.value("iteration", 0u)
             << "  "
             << format_bytes(static_cast<unsigned long long>(p.value("bandwidth_bytes_per_s", 0.0)))
             << "/s  " << format_bytes(left) << " left  downtime ~"
             << fixed(p.value("expected_downtime_ms", 0.0), 0) << " ms";
        if (unsigned t = p.value("throttle_percent", 0u); t > 0) {
            line << "  throttle " << t << '%';
        }
        std::string text = line.str();
        auto now = Clock::now();
        if (tty_) {
            err_ << '\r' << text << "\033[K" << std::flush;
            drawn_ = true;
        } else if (text != last_ && now - last_print_ >= std::chrono::seconds(1)) {
            err_ << text << '\n' << std::flush; // a log, not a terminal: one line a second
            last_ = text;
            last_print_ = now;
        }
    }
    void finish() {
        if (drawn_) {
            err_ << '\n';
            drawn_ = false;
        }
    }

  private:
    std::ostream& err_;
    bool tty_;
    bool drawn_ = false;
    double percent_ = 0;
    std::string last_;
    Clock::time_point last_print_{};
};

std::string summary(const control::VmMigration& m) {
    Json r = parse_or_null(m.report_json());
    std::ostringstream out;
    out << "VM '" << m.name() << "' " << (m.live() ? "live-migrated" : "moved (quick migration)")
        << " to " << m.destination();
    if (!r.is_object()) {
        return out.str();
    }
    const double total_ms = r.value("total_time_ms", 0.0);
    const auto wire = r.value("bytes_on_wire", std::uint64_t{0});
    out << " in " << fixed(total_ms / 1000.0, 2) << " s\n"
        << "  downtime " << fixed(r.value("downtime_ms", 0.0), 1) << " ms";
    if (r.contains("downtime_parts_ms") && r["downtime_parts_ms"].is_object()) {
        const Json& d = r["downtime_parts_ms"];
        out << " (pause " << fixed(d.value("pause", 0.0), 0) << ", last pages "
            << fixed(d.value("pages", 0.0), 0) << ", state " << fixed(d.value("state", 0.0), 0)
            << ", destination " << fixed(d.value("ack", 0.0), 0) << ")";
    }
    out << ", " << r.value("iterations", 0u) << " pass(es)"
        << (m.live() ? (r.value("converged", false) ? " (converged)" : " (did not converge)") : "")
        << ", max throttle " << r.value("max_throttle_percent", 0u) << "%\n"
        << "  " << format_bytes(wire) << " on the wire for "
        << format_bytes(r.value("guest_bytes", std::uint64_t{0})) << " of guest memory";
    if (total_ms > 0) {
        out << " ("
            << format_bytes(
                   static_cast<unsigned long long>(static_cast<double>(wire) * 1000.0 / total_ms))
            << "/s)";
    }
    if (r.contains("pages") && r["pages"].is_object()) {
        const Json& pages = r["pages"];
        out << "\n  pages: " << pages.value("raw", std::uint64_t{0}) << " whole, "
            << pages.value("zero", std::uint64_t{0}) << " zero, "
            << pages.value("xbzrle", std::uint64_t{0}) << " as deltas";
    }
    return out.str();
}

// Follows the migration of `name` until it ends; Ctrl-C cancels it (once) and keeps waiting
// for the VM to be safely back.
control::VmMigration follow(Invocation& inv, const po::variables_map& vm, const std::string& name,
                            double timeout_s) {
    ProgressBar bar(std::cerr);
    auto previous = std::signal(SIGINT, on_interrupt);
    interrupted.store(false);
    bool cancel_sent = false;
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    control::VmMigration m;
    for (;;) {
        m = status_of(vm, name);
        if (!in_flight(m)) {
            break;
        }
        if (!inv.json) {
            bar.show(m);
        }
        if (interrupted.load() && !cancel_sent) {
            control::Request request;
            request.mutable_vm_migrate_cancel()->set_name(name);
            try {
                call(vm, request);
                std::cerr << "\ncancelling the migration of '" << name << "'...\n";
            } catch (const Error& e) {
                std::cerr << "\ncannot cancel: " << e.what() << '\n';
            }
            cancel_sent = true;
        }
        if (Clock::now() > deadline) {
            bar.finish();
            std::signal(SIGINT, previous);
            throw Error(ErrorCode::timeout,
                        "the migration of '" + name + "' is still under way after " +
                            fixed(timeout_s, 0) + " s (it goes on: `godwit vm migrate-status " +
                            name + "`, `godwit vm migrate-cancel " + name + "`)");
        }
        std::this_thread::sleep_for(poll_interval);
    }
    if (!inv.json) {
        bar.show(m);
    }
    bar.finish();
    std::signal(SIGINT, previous);
    return m;
}

int report_outcome(Invocation& inv, const control::VmMigration& m) {
    if (m.state() == "completed") {
        if (inv.json) {
            print_json(*inv.out, migration_json(m));
        } else {
            *inv.out << summary(m) << '\n';
        }
        return 0;
    }
    std::string why = m.error().empty() ? m.state() : m.error();
    if (m.state() == "cancelled") {
        throw Error(ErrorCode::cancelled,
                    "the migration of '" + m.name() + "' was cancelled; it keeps running here");
    }
    throw Error(ErrorCode::failed, "VM '" + m.name() + "' was not migrated to " + m.destination() +
                                       " (it keeps running here): " + why);
}

int run_migration(Invocation& inv, bool quick_only) {
    po::options_description options("Options");
    options.add_options()("destination", po::value<std::string>(),
                          "the destination host's migration listener: HOST[:PORT] (port 6600)");
    if (!quick_only) {
        options.add_options()("live", "live migration: the VM keeps running while its memory is "
                                      "copied (the default)")(
            "quick", "quick migration: pause, copy once, resume on DEST (as `godwit vm move`)")(
            "downtime-limit", po::value<double>()->default_value(0),
            "longest pause (ms) allowed at the switchover; 0: 300 ms");
    }
    options.add_options()("bandwidth", po::value<double>()->default_value(0),
                          "cap the stream at this many MiB/s (0: no cap)")(
        "timeout", po::value<double>()->default_value(3600),
        "seconds to follow the migration before giving up waiting (it goes on)")(
        "no-wait", "return once the migration has started");
    po::variables_map vm;
    std::string name;
    if (!parse_named(inv, options, vm, name, "destination")) {
        return 0;
    }
    if (!vm.count("destination")) {
        throw Error(ErrorCode::usage, "godwit " + inv.command_path + ": DEST is missing (godwit " +
                                          inv.command_path + " NAME HOST[:PORT])");
    }
    if (vm.count("live") && vm.count("quick")) {
        throw Error(ErrorCode::usage, "--live and --quick exclude each other");
    }
    const double bandwidth = vm["bandwidth"].as<double>();
    if (bandwidth < 0) {
        throw Error(ErrorCode::usage, "--bandwidth cannot be negative");
    }
    control::Request request;
    auto* migrate = request.mutable_vm_migrate();
    migrate->set_name(name);
    migrate->set_destination(vm["destination"].as<std::string>());
    migrate->set_live(!quick_only && !vm.count("quick"));
    if (!quick_only) {
        double limit = vm["downtime-limit"].as<double>();
        if (limit < 0) {
            throw Error(ErrorCode::usage, "--downtime-limit cannot be negative");
        }
        migrate->set_downtime_limit_ms(limit);
    }
    migrate->set_bandwidth_bytes_per_s(static_cast<std::uint64_t>(bandwidth * 1024 * 1024));
    control::VmMigration started = expect_migration(call(vm, request), "vm migrate");
    if (vm.count("no-wait")) {
        if (inv.json) {
            print_json(*inv.out, migration_json(started));
        } else {
            *inv.out << "VM '" << name << "': migration to " << started.destination()
                     << " started (`godwit vm migrate-status " << name << "`)\n";
        }
        return 0;
    }
    return report_outcome(inv, follow(inv, vm, name, vm["timeout"].as<double>()));
}

int run_migrate(Invocation& inv) {
    return run_migration(inv, false);
}
int run_move(Invocation& inv) {
    return run_migration(inv, true);
}

int run_cancel(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("no-wait", "return once the cancel is sent")(
        "timeout", po::value<double>()->default_value(300),
        "seconds to wait for the migration to end");
    po::variables_map vm;
    std::string name;
    if (!parse_named(inv, options, vm, name)) {
        return 0;
    }
    control::Request request;
    request.mutable_vm_migrate_cancel()->set_name(name);
    expect_migration(call(vm, request), "vm migrate-cancel");
    if (vm.count("no-wait")) {
        *inv.out << (inv.json ? "" : "cancel sent\n");
        if (inv.json) {
            print_json(*inv.out, migration_json(status_of(vm, name)));
        }
        return 0;
    }
    Invocation quiet = inv;
    quiet.json = true; // no progress bar while it winds down
    control::VmMigration m = follow(quiet, vm, name, vm["timeout"].as<double>());
    if (inv.json) {
        print_json(*inv.out, migration_json(m));
    } else if (m.state() == "completed") {
        *inv.out << "too late: " << summary(m) << '\n';
    } else {
        *inv.out << "migration of '" << name << "' " << m.state() << "; it keeps running here\n";
    }
    return 0;
}

int run_status(Invocation& inv) {
    po::options_description options("Options");
    po::variables_map vm;
    std::string name;
    if (!parse_named(inv, options, vm, name)) {
        return 0;
    }
    control::VmMigration m = status_of(vm, name);
    if (inv.json) {
        print_json(*inv.out, migration_json(m));
        return 0;
    }
    *inv.out << "VM '" << name << "': migration " << m.state();
    if (!m.destination().empty()) {
        *inv.out << " (to " << m.destination() << ")";
    }
    *inv.out << '\n';
    if (m.state() == "completed") {
        *inv.out << summary(m) << '\n';
    } else if (!m.error().empty()) {
        *inv.out << "  " << m.error() << '\n';
    } else if (Json p = parse_or_null(m.progress_json()); p.is_object()) {
        *inv.out << "  " << fixed(p.value("percent", 0.0), 0) << "% " << p.value("phase", "")
                 << ", pass " << p.value("iteration", 0u) << ", "
                 << format_bytes(p.value("bytes_sent", std::uint64_t{0})) << " sent\n";
    }
    return 0;
}

const Registration migrate_registration{
    {"vm", "migrate",
     "NAME DEST [--live|--quick] [--downtime-limit MS] [--bandwidth MIB/S] [--no-wait]",
     "move a running VM to the Godwit host DEST (HOST[:PORT]) while it runs, with a progress bar "
     "and a summary; Ctrl-C cancels (the VM keeps running here)",
     run_migrate}};
const Registration move_registration{
    {"vm", "move", "NAME DEST [--bandwidth MIB/S] [--no-wait]",
     "quick migration: pause the VM, copy it to DEST once and resume it there", run_move}};
const Registration cancel_registration{{"vm", "migrate-cancel", "NAME [--no-wait]",
                                        "cancel a migration under way; the VM keeps running here",
                                        run_cancel}};
const Registration status_registration{{"vm", "migrate-status", "NAME",
                                        "the state, progress or outcome of the VM's last migration",
                                        run_status}};

} // namespace
} // namespace godwit::cli
