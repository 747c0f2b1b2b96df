// Migration throughput as a fraction of raw loopback TCP measured right before, in the same
// run; downtime; total time; bytes on the wire per guest byte. Prints one JSON document.
//   migration_bench [--mib N] [--tls]
#include <chrono>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "godwit/migration/channel.hpp"
#include "godwit/migration/migration.hpp"
#include "synthetic_guest.hpp"

using namespace godwit::migration;
using namespace std::chrono;

namespace {

double raw_tcp_bytes_per_s(std::uint64_t bytes) {
    Listener listener("127.0.0.1", 0);
    TlsConfig plain;
    plain.enabled = false;
    std::thread receiver([&] {
        auto ch = listener.accept(plain, seconds(30));
        std::vector<std::uint8_t> buf(1 << 20);
        for (std::uint64_t got = 0; got < bytes; got += buf.size())
            ch->read_exact(buf.data(), buf.size());
    });
    auto ch = connect_channel("127.0.0.1", listener.port(), plain, seconds(30));
    std::vector<std::uint8_t> buf(1 << 20, 0x5A);
    auto t0 = steady_clock::now();
    for (std::uint64_t sent = 0; sent < bytes; sent += buf.size())
        ch->write_all(buf.data(), buf.size());
    receiver.join();
    return bytes / duration<double>(steady_clock::now() - t0).count();
}

nlohmann::ordered_json migrate(const std::string& name, std::uint64_t pages, double zero_fraction,
                               double dirty_pps, bool tls_on, double raw_bps,
                               double downtime_limit_ms = 300) {
    testing::SyntheticGuest guest(pages, zero_fraction, 3);
    guest.start_writers(2, dirty_pps);
    testing::SyntheticIncomingVm incoming(pages);
    incoming.prepare(pages);
    Listener listener("127.0.0.1", 0);
    TlsConfig plain;
    plain.enabled = false;
    (void)tls_on;
    IncomingResult in;
    std::thread receiver([&] {
        auto ch = listener.accept(plain, seconds(60));
        in = migrate_in(*ch, incoming);
    });
    auto ch = connect_channel("127.0.0.1", listener.port(), plain, seconds(60));
    SourceOptions o;
    o.digest = false; // verification is the tests' job; here it would inflate the downtime
    o.downtime_limit_ms = downtime_limit_ms;
    Report r = migrate_out(*ch, guest, guest, guest, guest, o);
    receiver.join();
    guest.stop_writers();
    double guest_bytes = static_cast<double>(pages) * page_size;
    double throughput = guest_bytes / (r.total_time_ms / 1000.0);
    return {{"case", name},
            {"ok", r.ok && in.ok},
            {"error", r.error.empty() ? in.error : r.error},
            {"dirty_pages_per_s", dirty_pps},
            {"downtime_limit_ms", downtime_limit_ms},
            {"throughput_mib_s", throughput / (1 << 20)},
            {"fraction_of_raw_tcp", throughput / raw_bps},
            {"downtime_ms", r.downtime_ms},
            {"total_time_ms", r.total_time_ms},
            {"setup_time_ms", r.setup_time_ms},
            {"iterations", r.iterations},
            {"max_throttle_percent", r.max_throttle_percent},
            {"bytes_on_wire", r.bytes_on_wire},
            {"wire_bytes_per_guest_byte", r.bytes_on_wire / guest_bytes},
            {"pages", {{"raw", r.pages_raw}, {"zero", r.pages_zero}, {"xbzrle", r.pages_xbzrle}}}};
}

} // namespace

int main(int argc, char** argv) {
    std::uint64_t mib = 1024;
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::string(argv[i]) == "--mib")
            mib = std::stoull(argv[i + 1]);
    }
    std::uint64_t pages = mib * 256;
    nlohmann::ordered_json out;
    out["benchmark"] = "migration";
    out["guest_mib"] = mib;
    out["tls"] = false;
    out["destination_ram_prefaulted"] = true;
    out["verification"] = "none here (the migration tests check memory byte for byte)";
    double raw = raw_tcp_bytes_per_s(mib << 20);
    out["raw_loopback_tcp_mib_s"] = raw / (1 << 20);
    out["results"].push_back(migrate("idle", pages, 0.0, 0, false, raw));
    out["results"].push_back(migrate("half_zero_pages", pages, 0.5, 0, false, raw));
    // Dirtying at 10% of the raw bandwidth, in pages per second.
    out["results"].push_back(
        migrate("dirty_10pct_of_bandwidth", pages, 0.0, 0.1 * raw / page_size, false, raw, 20));
    std::cout << out.dump(2) << std::endl;
    return 0;
}
