// What the `godwit vm ...` command files share: the VM's NAME and --socket options and one
// request to godwitd.
#pragma once

#include <string>

#include "../cli.hpp"
#include "control.pb.h"
#include "godwit/control_client.hpp"
#include "godwit/error.hpp"

namespace godwit::cli {

inline void add_socket_option(po::options_description& options) {
    options.add_options()(
        "socket", po::value<std::string>()->default_value(control::socket_path_from_environment()),
        "godwitd's control socket (also $GODWIT_SOCKET)");
}

// Parses "GROUP COMMAND NAME [options]" with NAME required.
inline std::string vm_name(const po::variables_map& vm, const Invocation& inv) {
    if (!vm.count("name")) {
        throw Error(ErrorCode::usage, "godwit " + inv.command_path +
                                          ": the VM's NAME is missing (see `godwit " +
                                          inv.command_path + " --help`)");
    }
    return vm["name"].as<std::string>();
}

// What most vm commands share: `options` gets the VM's NAME (first positional argument,
// then `second` if given) and --socket; parses; false when --help was printed.
inline bool parse_named(Invocation& inv, po::options_description& options, po::variables_map& vm,
                        std::string& name, const char* second = nullptr) {
    options.add_options()("name", po::value<std::string>(), "the VM");
    add_socket_option(options);
    po::positional_options_description positional;
    positional.add("name", 1);
    if (second != nullptr) {
        positional.add(second, 1);
    }
    if (!parse_options(inv, options, positional, vm)) {
        return false;
    }
    name = vm_name(vm, inv);
    return true;
}

inline control::Response call(const po::variables_map& vm, const control::Request& request) {
    return control::call(vm["socket"].as<std::string>(), request);
}

inline control::VmInfo expect_vm(const control::Response& response, const char* what) {
    if (!response.has_vm()) {
        throw Error(ErrorCode::protocol,
                    std::string("godwitd answered ") + what + " with something else");
    }
    return response.vm();
}

inline control::VmInfo show(const po::variables_map& vm, const std::string& name) {
    control::Request request;
    request.mutable_vm_show()->set_name(name);
    return expect_vm(call(vm, request), "vm show");
}

} // namespace godwit::cli
