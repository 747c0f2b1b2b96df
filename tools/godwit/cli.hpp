// The `godwit` command-line framework: a registry of "GROUP COMMAND" handlers.
//
// Each command group lives in tools/godwit/commands/<group>_commands.cpp and registers
// itself with a file-scope `const cli::Registration`. Global options (--json,
// --log-level, --help) are accepted anywhere before a `--`, so `godwit disk info --json F`
// and `godwit --json disk info F` mean the same.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include <boost/program_options.hpp>

#include "godwit/output.hpp"

namespace godwit::cli {

namespace po = boost::program_options;

struct Invocation {
    bool json = false;             // --json: print one JSON document on stdout
    std::vector<std::string> args; // what follows "GROUP COMMAND"
    std::ostream* out = nullptr;   // stdout (tests may redirect)
    std::string command_path;      // "disk info", for messages
};

// Returns the process exit code (0 = success). Throws godwit::Error on failure.
using Handler = std::function<int(Invocation&)>;

struct Command {
    std::string group;   // "disk"
    std::string name;    // "create"; empty for a group-less command ("version")
    std::string usage;   // "[-t TYPE] FILE [SIZE]"
    std::string summary; // one line for `godwit --help`
    Handler run;
};

class Registry {
  public:
    static Registry& instance();
    void add(Command command);
    const Command* find(std::string_view group, std::string_view name) const;
    const std::vector<Command>& commands() const { return commands_; }
    bool has_group(std::string_view group) const;

  private:
    std::vector<Command> commands_;
};

struct Registration {
    explicit Registration(Command command) { Registry::instance().add(std::move(command)); }
};

// Parses inv.args against `options` and `positional` into `vm`. Returns false when the
// user asked for --help (the help text has been printed). Throws Error(usage) otherwise
// on bad arguments, naming the command.
bool parse_options(Invocation& inv, const po::options_description& options,
                   const po::positional_options_description& positional, po::variables_map& vm);

// Entry point: runs argv and returns the exit code (never throws).
int run(int argc, char** argv, std::ostream& out, std::ostream& err);

} // namespace godwit::cli
