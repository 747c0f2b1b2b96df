// `godwit version`: the CLI's own version (and, once the root partition exists, the
// hypervisor's, read through godwitd).
#include "../cli.hpp"

#include <ostream>

#include "godwit/version.hpp"

namespace godwit::cli {
namespace {

int run_version(Invocation& inv) {
    po::options_description options("Options");
    po::positional_options_description positional;
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    if (inv.json) {
        print_json(*inv.out, Json{{"version", std::string(version())}});
    } else {
        *inv.out << "godwit " << version() << '\n';
    }
    return 0;
}

const Registration registration{{"version", "", "", "print the godwit version", run_version}};

} // namespace
} // namespace godwit::cli
