#include "godwit/vmm/vm_definition.hpp"

#include "godwit/vmm/vm_definition_store.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "test_support.hpp"

using namespace godwit::vmm;
using godwit::ErrorCode;

namespace {
const std::string hello_elf = std::string(GODWIT_GUEST_DIR) + "/hello.elf";

std::string definition_json(const std::string& extra = "") {
    return R"({"schema": 1, "name": "web-1", "vcpus": 2, "memory_mib": 128, "kernel": ")" +
           hello_elf + R"(", "cmdline": "console=ttyS0")" + extra + "}";
}

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/godwit-vmdef-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string write(const std::string& name, const std::string& contents) const {
        std::ofstream(path / name) << contents;
        return (path / name).string();
    }
};
} // namespace

TEST(VmDefinition, ParsesAndRoundTrips) {
    VmDefinition d = parse_vm_definition(
        definition_json(R"(, "modules": [{"path": "/m1", "cmdline": "one"}, {"path": "/m2"}],
                          "disks": [])"),
        "test");
    EXPECT_EQ(d.name, "web-1");
    EXPECT_EQ(d.vcpus, 2u);
    EXPECT_EQ(d.memory_mib, 128u);
    EXPECT_EQ(d.kernel, hello_elf);
    EXPECT_EQ(d.cmdline, "console=ttyS0");
    ASSERT_EQ(d.modules.size(), 2u);
    EXPECT_EQ(d.modules[0], (ModuleDefinition{"/m1", "one"}));
    EXPECT_EQ(d.modules[1], (ModuleDefinition{"/m2", ""}));
    EXPECT_EQ(parse_vm_definition(vm_definition_to_json(d), "round trip"), d);
}

TEST(VmDefinition, DefaultsToOneVcpu) {
    auto d = parse_vm_definition(R"({"schema": 1, "name": "a", "memory_mib": 2, "kernel": "/k"})",
                                 "test");
    EXPECT_EQ(d.vcpus, 1u);
    EXPECT_TRUE(d.modules.empty());
}

TEST(VmDefinition, ParseErrorsNameTheProblem) {
    expect_error(ErrorCode::invalid_input, "not valid JSON", [] { parse_vm_definition("{", "x"); });
    // Found by fuzz_vmm_inputs: a number no double holds is a JSON range error, not a crash.
    expect_error(ErrorCode::invalid_input, "not valid JSON", [] {
        parse_vm_definition(R"({"schema": 1, "name": "a", "memory_mib": 1e400, "kernel": "/k"})",
                            "x");
    });
    expect_error(ErrorCode::invalid_input, "must be a JSON object",
                 [] { parse_vm_definition("[]", "x"); });
    expect_error(ErrorCode::invalid_input, "unknown key \"memory\"",
                 [] { parse_vm_definition(definition_json(R"(, "memory": 5)"), "x"); });
    expect_error(ErrorCode::invalid_input, "required key \"kernel\"", [] {
        parse_vm_definition(R"({"schema": 1, "name": "a", "memory_mib": 4})", "x");
    });
    expect_error(ErrorCode::unsupported, "schema 2", [] {
        parse_vm_definition(R"({"schema": 2, "name": "a", "memory_mib": 4, "kernel": "/k"})", "x");
    });
    expect_error(ErrorCode::invalid_input, "name \"bad name\"", [] {
        parse_vm_definition(R"({"schema": 1, "name": "bad name", "memory_mib": 4, "kernel": "/k"})",
                            "x");
    });
    expect_error(ErrorCode::invalid_input, "\"vcpus\" is 0, must be 1..254", [] {
        parse_vm_definition(
            R"({"schema": 1, "name": "a", "vcpus": 0, "memory_mib": 4, "kernel": "/k"})", "x");
    });
    expect_error(ErrorCode::invalid_input, "\"memory_mib\" must be a whole number", [] {
        parse_vm_definition(R"({"schema": 1, "name": "a", "memory_mib": "4G", "kernel": "/k"})",
                            "x");
    });
    expect_error(ErrorCode::invalid_input, "\"memory_mib\" is 1, must be 2..", [] {
        parse_vm_definition(R"({"schema": 1, "name": "a", "memory_mib": 1, "kernel": "/k"})", "x");
    });
    expect_error(ErrorCode::unsupported, "disks are not supported yet", [] {
        parse_vm_definition(definition_json(R"(, "disks": [{"path": "/d"}])"), "x");
    });
    expect_error(ErrorCode::invalid_input, "modules[0]: unknown key \"args\"", [] {
        parse_vm_definition(definition_json(R"(, "modules": [{"path": "/m", "args": ""}])"), "x");
    });
}

TEST(VmDefinition, ValidationAgainstTheHost) {
    TempDir tmp;
    VmDefinition d = parse_vm_definition(definition_json(), "test");
    HostResources host{.free_memory_mib = 1024, .existing_names = {"other"}};
    EXPECT_EQ(validate_vm_definition(d, host), KernelFormat::multiboot1);

    expect_error(ErrorCode::conflict, "a VM named 'web-1' already exists", [&] {
        validate_vm_definition(d, {.free_memory_mib = 1024, .existing_names = {"web-1"}});
    });
    expect_error(ErrorCode::conflict, "needs 128 MiB of memory but only 64 MiB are free",
                 [&] { validate_vm_definition(d, {.free_memory_mib = 64, .existing_names = {}}); });

    VmDefinition missing = d;
    missing.kernel = (tmp.path / "nope.elf").string();
    expect_error(ErrorCode::not_found, "does not exist",
                 [&] { validate_vm_definition(missing, host); });

    VmDefinition not_multiboot = d;
    not_multiboot.kernel = tmp.write("plain.bin", std::string(10000, '\x90'));
    expect_error(ErrorCode::unsupported, "is not a Multiboot1 or Multiboot2 image",
                 [&] { validate_vm_definition(not_multiboot, host); });

    VmDefinition missing_module = d;
    missing_module.modules.push_back({(tmp.path / "initrd").string(), ""});
    expect_error(ErrorCode::not_found, "module",
                 [&] { validate_vm_definition(missing_module, host); });
    tmp.write("initrd", "data");
    EXPECT_EQ(validate_vm_definition(missing_module, host), KernelFormat::multiboot1);
}

TEST(VmDefinition, LoadsFromAFile) {
    TempDir tmp;
    auto path = tmp.write("web-1.json", definition_json());
    EXPECT_EQ(load_vm_definition(path).name, "web-1");
    expect_error(ErrorCode::not_found, "does not exist",
                 [&] { load_vm_definition(tmp.path / "missing.json"); });
    auto broken = tmp.write("broken.json", "{\"schema\": 1,");
    expect_error(ErrorCode::invalid_input, broken, [&] { load_vm_definition(broken); });
}

TEST(VmDefinitionStore, CreateGetListRemove) {
    TempDir tmp;
    VmDefinitionStore store(tmp.path / "vms");
    EXPECT_TRUE(store.names().empty());
    VmDefinition web = parse_vm_definition(definition_json(), "test");
    EXPECT_EQ(store.create(web, 1024), KernelFormat::multiboot1);
    VmDefinition db = web;
    db.name = "db";
    db.memory_mib = 256;
    store.create(db, 1024);
    EXPECT_EQ(store.names(), (std::vector<std::string>{"db", "web-1"}));
    EXPECT_EQ(store.get("web-1"), web);
    auto all = store.list();
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0], db);
    EXPECT_FALSE(std::filesystem::exists(tmp.path / "vms" / "web-1.json.tmp"));

    expect_error(ErrorCode::conflict, "already exists", [&] { store.create(web, 1024); });
    VmDefinition big = web;
    big.name = "big";
    big.memory_mib = 4096;
    expect_error(ErrorCode::conflict, "only 1024 MiB are free", [&] { store.create(big, 1024); });
    EXPECT_EQ(store.names().size(), 2u); // refused definitions are not stored

    store.remove("db");
    EXPECT_EQ(store.names(), (std::vector<std::string>{"web-1"}));
    expect_error(ErrorCode::not_found, "no VM named 'db'", [&] { store.remove("db"); });
    expect_error(ErrorCode::not_found, "no VM named 'db'", [&] { store.get("db"); });
    expect_error(ErrorCode::invalid_input, "not a valid VM name", [&] { store.get("../etc"); });

    // A file whose name and content disagree is reported, not trusted.
    tmp.write("vms/other.json", vm_definition_to_json(web));
    expect_error(ErrorCode::invalid_input, "defines VM 'web-1', not 'other'",
                 [&] { store.get("other"); });
}
