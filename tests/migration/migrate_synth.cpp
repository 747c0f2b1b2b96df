// Two-process migration driver for tests and the benchmark: a synthetic VM on the source,
// the real engine, real TCP (TLS by default) on 127.0.0.1, or a file (quick migration).
//   migrate_synth dest   --port P [--tls-dir D | --plaintext] [--max-mib N]
//   migrate_synth source --port P --mib N [--dirty-pps R] [--zero-percent Z] [--downtime-ms L]
//                        [--cancel-after-ms T] [--timeout-s S] [--no-xbzrle] [--tls-dir D |
//                        --plaintext]
//   migrate_synth save FILE --mib N ... ; migrate_synth restore FILE
// Prints one JSON document; exit 0 when the migration succeeded.
#include <openssl/evp.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <thread>

#include "godwit/error.hpp"
#include "synthetic_guest.hpp"

using namespace godwit;
using namespace godwit::migration;
using namespace godwit::migration::testing;

namespace {

std::map<std::string, std::string> parse(int argc, char** argv, int first) {
    std::map<std::string, std::string> o;
    for (int i = first; i < argc; ++i) {
        std::string a = argv[i];
        if (a.rfind("--", 0) == 0) {
            if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0)
                o[a.substr(2)] = argv[++i];
            else
                o[a.substr(2)] = "1";
        } else {
            o["file"] = a;
        }
    }
    return o;
}

std::string digest_hex(const GuestMemory& m) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    std::vector<std::uint8_t> page(page_size);
    for (std::uint64_t p = 0; p < m.page_count(); ++p) {
        m.read_page(p, page.data());
        EVP_DigestUpdate(ctx, page.data(), page.size());
    }
    unsigned char d[32];
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx, d, &n);
    EVP_MD_CTX_free(ctx);
    char hex[65];
    for (int i = 0; i < 32; ++i)
        std::snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return hex;
}

TlsConfig tls_from(std::map<std::string, std::string>& o, const std::string& who) {
    TlsConfig t;
    if (o.count("plaintext")) {
        t.enabled = false;
        return t;
    }
    if (!o.count("tls-dir"))
        throw Error(ErrorCode::usage,
                    "--tls-dir DIR (ca.pem, " + who + ".pem, " + who + ".key) or --plaintext");
    t.ca_file = o["tls-dir"] + "/ca.pem";
    t.cert_file = o["tls-dir"] + "/" + who + ".pem";
    t.key_file = o["tls-dir"] + "/" + who + ".key";
    return t;
}

int run_source(std::map<std::string, std::string>& o, Channel* file) {
    std::uint64_t pages = std::stoull(o.count("mib") ? o["mib"] : "64") * 256;
    double zero = std::stod(o.count("zero-percent") ? o["zero-percent"] : "0") / 100.0;
    SyntheticGuest guest(pages, zero, 7);
    double pps = std::stod(o.count("dirty-pps") ? o["dirty-pps"] : "0");
    guest.start_writers(2, pps);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    SourceOptions opt;
    opt.vm_name = "synthetic";
    opt.live = file == nullptr;
    if (o.count("downtime-ms"))
        opt.downtime_limit_ms = std::stod(o["downtime-ms"]);
    if (o.count("no-xbzrle"))
        opt.xbzrle = false;
    if (o.count("no-digest"))
        opt.digest = false;
    if (o.count("bandwidth"))
        opt.bandwidth_limit = std::stoull(o["bandwidth"]);
    std::atomic<bool> cancel{false};
    opt.cancel = &cancel;
    std::thread canceller;
    if (o.count("cancel-after-ms")) {
        canceller = std::thread([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(o["cancel-after-ms"])));
            cancel = true;
        });
    }
    std::unique_ptr<Channel> net;
    Channel* ch = file;
    if (ch == nullptr) {
        auto timeout =
            std::chrono::seconds(std::stoi(o.count("timeout-s") ? o["timeout-s"] : "30"));
        net = connect_channel("127.0.0.1", static_cast<std::uint16_t>(std::stoi(o["port"])),
                              tls_from(o, "source"), timeout);
        ch = net.get();
    }
    Report r = migrate_out(*ch, guest, guest, guest, guest, opt);
    if (canceller.joinable())
        canceller.join();
    auto j = r.to_json();
    if (r.ok) {
        j["source_digest_at_switchover"] = digest_hex(guest); // still paused: memory as sent
        j["source_vm_paused"] = guest.paused();
    } else {
        // The VM must be running on: writers make progress again.
        std::uint64_t before = guest.writes();
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        j["source_vm_running"] = !guest.paused() && (pps == 0 || guest.writes() > before);
        j["source_throttle_after"] = guest.throttle();
    }
    guest.stop_writers();
    std::cout << j.dump(2) << std::endl;
    return r.ok ? 0 : 1;
}

int run_dest(std::map<std::string, std::string>& o, Channel* file) {
    std::uint64_t max_pages = std::stoull(o.count("max-mib") ? o["max-mib"] : "4096") * 256;
    SyntheticIncomingVm vm(max_pages);
    std::unique_ptr<Channel> net;
    std::unique_ptr<Listener> listener;
    Channel* ch = file;
    if (ch == nullptr) {
        listener = std::make_unique<Listener>("127.0.0.1",
                                              static_cast<std::uint16_t>(std::stoi(o["port"])));
        std::cerr << "listening on 127.0.0.1:" << listener->port() << std::endl;
        auto timeout =
            std::chrono::seconds(std::stoi(o.count("timeout-s") ? o["timeout-s"] : "30"));
        net = listener->accept(tls_from(o, "dest"), timeout);
        ch = net.get();
    }
    IncomingResult r = migrate_in(*ch, vm);
    nlohmann::ordered_json j{{"ok", r.ok},
                             {"error", r.error},
                             {"vm_name", r.vm_name},
                             {"pages", r.pages},
                             {"bytes_received", r.bytes_received},
                             {"started", vm.started_},
                             {"discarded", vm.discarded_}};
    if (r.ok) {
        j["dest_digest"] = digest_hex(*vm.guest());
        j["state_blobs"] = vm.guest()->restored_.size();
    }
    std::cout << j.dump(2) << std::endl;
    return r.ok ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    try {
        if (argc < 2)
            throw Error(ErrorCode::usage, "usage: migrate_synth source|dest|save|restore ...");
        std::string mode = argv[1];
        auto o = parse(argc, argv, 2);
        if (mode == "source")
            return run_source(o, nullptr);
        if (mode == "dest")
            return run_dest(o, nullptr);
        if (mode == "save") {
            auto f = file_channel(o["file"], true);
            return run_source(o, f.get());
        }
        if (mode == "restore") {
            auto f = file_channel(o["file"], false);
            return run_dest(o, f.get());
        }
        throw Error(ErrorCode::usage, "unknown mode " + mode);
    } catch (const Error& e) {
        std::cerr << "migrate_synth: " << e.what() << '\n';
        return exit_code_for(e.code());
    }
}
