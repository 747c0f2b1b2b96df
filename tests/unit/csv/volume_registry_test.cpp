// The registry of `godwit csv add|list|remove` on real files in a temporary directory.
#include "godwit/csv/volume_registry.hpp"

#include <fstream>
#include <functional>

#include <gtest/gtest.h>
#include <unistd.h>

#include "godwit/error.hpp"

using namespace godwit::csv;

namespace {

struct TempDir {
    std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("csv-registry-" + std::to_string(::getpid()));
    TempDir() { std::filesystem::remove_all(path); }
    ~TempDir() { std::filesystem::remove_all(path); }
};

RegisteredVolume volume(const std::string& name) {
    RegisteredVolume v;
    v.name = name;
    v.device = "/dev/disk/by-id/lun-" + name;
    v.node_id = 2;
    v.members = "1=127.0.0.1:7001,2=127.0.0.1:7002";
    v.ca = "/etc/godwit/tls/ca.pem";
    v.cert = "/etc/godwit/tls/host.pem";
    v.key = "/etc/godwit/tls/host.key";
    v.mountpoint = "/ClusterStorage/" + name;
    return v;
}

godwit::ErrorCode code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const godwit::Error& e) {
        return e.code();
    }
    return godwit::ErrorCode::internal; // "no error" in these tests
}

} // namespace

TEST(VolumeRegistry, AddFindListRemove) {
    TempDir tmp;
    VolumeRegistry r(tmp.path / "csv"); // created on first add
    EXPECT_TRUE(r.list().empty());
    r.add(volume("Volume2"));
    auto plain = volume("Volume1");
    plain.plaintext = true;
    plain.ca = plain.cert = plain.key = "";
    r.add(plain);
    auto found = r.find("Volume2");
    ASSERT_TRUE(found.has_value());
    EXPECT_EQ(found->device, "/dev/disk/by-id/lun-Volume2");
    EXPECT_EQ(found->node_id, 2u);
    EXPECT_EQ(found->key, "/etc/godwit/tls/host.key");
    EXPECT_EQ(found->lease_ms, 10000u);
    auto all = r.list();
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].name, "Volume1");
    EXPECT_TRUE(all[0].plaintext);
    EXPECT_EQ(all[1].name, "Volume2");
    EXPECT_FALSE(r.find("Volume3").has_value());

    EXPECT_EQ(code_of([&] { r.add(volume("Volume2")); }), godwit::ErrorCode::conflict);
    auto moved = volume("Volume2");
    moved.device = "/dev/sdz";
    r.add(moved, true); // --replace
    EXPECT_EQ(r.find("Volume2")->device, "/dev/sdz");

    r.remove("Volume1");
    EXPECT_EQ(r.list().size(), 1u);
    EXPECT_EQ(code_of([&] { r.remove("Volume1"); }), godwit::ErrorCode::not_found);
}

TEST(VolumeRegistry, RefusesBadNamesIncompleteEntriesAndBadFiles) {
    TempDir tmp;
    VolumeRegistry r(tmp.path);
    for (const char* bad : {"", ".", "..", "a/b"}) {
        EXPECT_EQ(code_of([&] { r.add(volume(bad)); }), godwit::ErrorCode::usage) << bad;
    }
    auto no_members = volume("V");
    no_members.members.clear();
    EXPECT_EQ(code_of([&] { r.add(no_members); }), godwit::ErrorCode::usage);
    auto no_tls = volume("V");
    no_tls.key.clear();
    EXPECT_EQ(code_of([&] { r.add(no_tls); }), godwit::ErrorCode::usage);
    EXPECT_TRUE(r.list().empty());

    // A damaged or foreign file is named, not silently skipped.
    std::filesystem::create_directories(tmp.path);
    std::ofstream(tmp.path / "Broken.json") << "{ not json";
    EXPECT_EQ(code_of([&] { r.find("Broken"); }), godwit::ErrorCode::invalid_input);
    std::ofstream(tmp.path / "Other.json") << R"({"name": "Else", "device": "/d", "node_id": 1,
                                                  "members": "1=127.0.0.1:1", "plaintext": true})";
    EXPECT_EQ(code_of([&] { r.find("Other"); }), godwit::ErrorCode::invalid_input);
    std::ofstream(tmp.path / "Partial.json") << R"({"name": "Partial"})";
    EXPECT_EQ(code_of([&] { r.list(); }), godwit::ErrorCode::invalid_input);
}
