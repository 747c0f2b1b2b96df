#include "cli.hpp"

#include <algorithm>
#include <iostream>
#include <map>
#include <set>

#include "godwit/error.hpp"
#include "godwit/logging.hpp"
#include "godwit/version.hpp"

namespace godwit::cli {

Registry& Registry::instance() {
    static Registry registry;
    return registry;
}

void Registry::add(Command command) {
    commands_.push_back(std::move(command));
}

const Command* Registry::find(std::string_view group, std::string_view name) const {
    for (const auto& c : commands_) {
        if (c.group == group && c.name == name) {
            return &c;
        }
    }
    return nullptr;
}

bool Registry::has_group(std::string_view group) const {
    return std::any_of(commands_.begin(), commands_.end(),
                       [&](const Command& c) { return c.group == group; });
}

namespace {

constexpr std::string_view global_help = R"(Global options (accepted anywhere before `--`):
  -h, --help             show help (for a group or command: `godwit disk --help`)
      --version          print the version and exit
      --json             print one machine-readable JSON document on stdout
      --log-level LEVEL  trace|debug|info|warn|error|critical|off (default: warn)

Exit codes: 0 success, 1 failed, 2 usage, 3 not found, 4 invalid input, 5 I/O error,
6 unsupported, 7 conflict, 8 timeout, 9 cancelled, 10 protocol error, 70 internal error.
)";

std::vector<const Command*> sorted_commands(std::string_view group = {}) {
    std::vector<const Command*> list;
    for (const auto& c : Registry::instance().commands()) {
        if (group.empty() || c.group == group) {
            list.push_back(&c);
        }
    }
    std::sort(list.begin(), list.end(), [](const Command* a, const Command* b) {
        return std::tie(a->group, a->name) < std::tie(b->group, b->name);
    });
    return list;
}

void print_usage(std::ostream& out, std::string_view group = {}) {
    out << "godwit " << version() << " — control a Godwit hypervisor host\n\n";
    out << "Usage: godwit [OPTIONS] " << (group.empty() ? "COMMAND" : group) << " [ARGS]\n\n";
    out << "Commands:\n";
    for (const Command* c : sorted_commands(group)) {
        std::string name = c->group + (c->name.empty() ? "" : " " + c->name);
        out << "  " << name;
        out << std::string(name.size() < 22 ? 22 - name.size() : 1, ' ') << c->summary << '\n';
    }
    out << "\nRun `godwit COMMAND --help` for a command's own options.\n\n" << global_help;
}

struct GlobalOptions {
    bool json = false;
    bool help = false;
    bool version = false;
    spdlog::level::level_enum log_level = spdlog::level::warn;
    std::vector<std::string> rest;
};

GlobalOptions extract_global_options(int argc, char** argv) {
    GlobalOptions g;
    bool passthrough = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (passthrough) {
            g.rest.emplace_back(a);
        } else if (a == "--") {
            passthrough = true;
            g.rest.emplace_back(a);
        } else if (a == "--json") {
            g.json = true;
        } else if (a == "-h" || a == "--help") {
            g.help = true;
        } else if (a == "--version") {
            g.version = true;
        } else if (a == "--log-level" || a.starts_with("--log-level=")) {
            std::string value;
            if (a == "--log-level") {
                if (i + 1 >= argc) {
                    throw Error(ErrorCode::usage, "--log-level needs a value");
                }
                value = argv[++i];
            } else {
                value = std::string(a.substr(std::string_view("--log-level=").size()));
            }
            auto level = parse_log_level(value);
            if (!level) {
                throw Error(ErrorCode::usage, "unknown log level '" + value +
                                                  "' (trace|debug|info|warn|error|critical|off)");
            }
            g.log_level = *level;
        } else {
            g.rest.emplace_back(a);
        }
    }
    return g;
}

} // namespace

bool parse_options(Invocation& inv, const po::options_description& options,
                   const po::positional_options_description& positional, po::variables_map& vm) {
    // --help was consumed globally; the dispatcher turns it into this marker.
    if (std::find(inv.args.begin(), inv.args.end(), "\x01help") != inv.args.end()) {
        const Command* c = nullptr;
        for (const auto& cmd : Registry::instance().commands()) {
            if (cmd.group + (cmd.name.empty() ? "" : " " + cmd.name) == inv.command_path) {
                c = &cmd;
            }
        }
        *inv.out << "Usage: godwit " << inv.command_path << ' ' << (c ? c->usage : "") << "\n";
        if (c) {
            *inv.out << c->summary << "\n";
        }
        *inv.out << '\n' << options << '\n' << global_help;
        return false;
    }
    try {
        po::store(po::command_line_parser(inv.args).options(options).positional(positional).run(),
                  vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw Error(ErrorCode::usage, "godwit " + inv.command_path + ": " + e.what() +
                                          " (see `godwit " + inv.command_path + " --help`)");
    }
    return true;
}

int run(int argc, char** argv, std::ostream& out, std::ostream& err) {
    bool json = false;
    try {
        GlobalOptions g = extract_global_options(argc, argv);
        json = g.json;
        init_logging(g.log_level);
        if (g.version) {
            if (json) {
                print_json(out, Json{{"version", std::string(version())}});
            } else {
                out << "godwit " << version() << '\n';
            }
            return 0;
        }
        if (g.rest.empty()) {
            print_usage(g.help ? out : err);
            return g.help ? 0 : exit_code_for(ErrorCode::usage);
        }
        const auto& registry = Registry::instance();
        std::string group = g.rest[0];
        std::size_t consumed = 1;
        const Command* command = nullptr;
        if (g.rest.size() >= 2) {
            command = registry.find(group, g.rest[1]);
            if (command) {
                consumed = 2;
            }
        }
        if (!command) {
            command = registry.find(group, "");
        }
        if (!command) {
            if (registry.has_group(group)) {
                if (g.help || g.rest.size() == 1) {
                    print_usage(g.help ? out : err, group);
                    return g.help ? 0 : exit_code_for(ErrorCode::usage);
                }
                throw Error(ErrorCode::usage, "unknown command 'godwit " + group + " " + g.rest[1] +
                                                  "' (see `godwit " + group + " --help`)");
            }
            throw Error(ErrorCode::usage, "unknown command '" + group + "' (see `godwit --help`)");
        }
        Invocation inv;
        inv.json = json;
        inv.out = &out;
        inv.command_path = command->group + (command->name.empty() ? "" : " " + command->name);
        inv.args.assign(g.rest.begin() + static_cast<std::ptrdiff_t>(consumed), g.rest.end());
        if (g.help) {
            inv.args.emplace_back("\x01help");
        }
        return command->run(inv);
    } catch (const Error& e) {
        spdlog::debug("command failed: {} ({})", e.what(), to_string(e.code()));
        if (json) {
            print_json(out, error_to_json(e));
        } else {
            err << "godwit: error: " << e.what() << '\n';
        }
        return exit_code_for(e.code());
    } catch (const std::exception& e) {
        Error internal(ErrorCode::internal, std::string("internal error: ") + e.what());
        if (json) {
            print_json(out, error_to_json(internal));
        } else {
            err << "godwit: " << internal.what() << '\n';
        }
        return exit_code_for(ErrorCode::internal);
    }
}

} // namespace godwit::cli
