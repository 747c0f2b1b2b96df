#include "godwit/migration/migration.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <unordered_map>

#include "godwit/error.hpp"
#include "godwit/migration/stream_format.hpp"
#include "godwit/migration/xbzrle.hpp"
#include "migration.pb.h"

namespace godwit::migration {
namespace {

using clock_type = std::chrono::steady_clock;
double ms_since(clock_type::time_point t) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

constexpr std::size_t batch_pages = 256;

bool is_zero(const std::uint8_t* p) {
    for (std::size_t i = 0; i < page_size; i += 8) {
        std::uint64_t v;
        std::memcpy(&v, p + i, 8);
        if (v != 0)
            return false;
    }
    return true;
}

std::vector<std::uint8_t> memory_digest(const GuestMemory& m) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    std::vector<std::uint8_t> page(page_size);
    for (std::uint64_t pfn = 0; pfn < m.page_count(); ++pfn) {
        m.read_page(pfn, page.data());
        EVP_DigestUpdate(ctx, page.data(), page.size());
    }
    std::vector<std::uint8_t> out(32);
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx, out.data(), &n);
    EVP_MD_CTX_free(ctx);
    return out;
}

std::string serialize(const google::protobuf::MessageLite& m) {
    std::string s;
    m.SerializeToString(&s);
    return s;
}

bool cancelled(const SourceOptions& o) {
    return o.cancel != nullptr && o.cancel->load();
}

// Sends pages, choosing per page: zero run, XBZRLE delta or raw; paces to the bandwidth cap.
class PageSender {
  public:
    PageSender(RecordWriter& w, const GuestMemory& m, const SourceOptions& o, Report& r)
        : writer_(w), memory_(m), options_(o), report_(r),
          batch_limit_(raw_batch_limit(o.bandwidth_limit)) {
        page_.resize(page_size);
        batch_.resize(batch_header + batch_pages * page_size);
    }

    // The first pass sends every page once: caching them all for XBZRLE would cost a copy of
    // guest RAM for pages that mostly never change again (QEMU skips its "bulk stage" too).
    void set_first_pass(bool first) { first_pass_ = first; }
    // During stop-and-copy nothing will be re-sent after this pass: deltas against pages
    // already cached still help, but caching more pages would only spend downtime.
    void set_final_pass(bool final) { final_pass_ = final; }

    void send(std::uint64_t pfn) {
        // Read straight into the next slot of the raw batch; most pages leave it there.
        std::uint8_t* slot = batch_.data() + batch_header + raw_count_ * page_size;
        memory_.read_page(pfn, slot);
        if (is_zero(slot)) {
            if (!zero_start_.empty() && zero_start_.back() + zero_length_.back() == pfn) {
                ++zero_length_.back();
            } else {
                zero_start_.push_back(pfn);
                zero_length_.push_back(1);
            }
            ++report_.pages_zero;
            if (options_.xbzrle)
                cache_.erase(pfn);
            if (zero_start_.size() >= 4096)
                flush_zero();
            return;
        }
        if (options_.xbzrle && !first_pass_) {
            auto it = cache_.find(pfn);
            if (it != cache_.end() &&
                xbzrle::encode(it->second.data(), slot, page_size, page_size / 2, delta_)) {
                std::uint8_t h[12];
                for (int i = 0; i < 8; ++i)
                    h[i] = static_cast<std::uint8_t>(pfn >> (8 * i));
                for (int i = 0; i < 4; ++i)
                    h[8 + i] = static_cast<std::uint8_t>(delta_.size() >> (8 * i));
                xbzrle_.insert(xbzrle_.end(), h, h + 12);
                xbzrle_.insert(xbzrle_.end(), delta_.begin(), delta_.end());
                std::memcpy(it->second.data(), slot, page_size);
                ++report_.pages_xbzrle;
                if (xbzrle_.size() >= (1u << 20))
                    flush_xbzrle();
                return;
            }
            if (it != cache_.end())
                std::memcpy(it->second.data(), slot, page_size);
            else if (!final_pass_ && cache_.size() < options_.xbzrle_cache_pages) {
                cache_.emplace(pfn, std::vector<std::uint8_t>(slot, slot + page_size));
            }
        }
        std::uint8_t* index = batch_.data() + 4 + raw_count_ * 8;
        for (int i = 0; i < 8; ++i)
            index[i] = static_cast<std::uint8_t>(pfn >> (8 * i));
        ++raw_count_;
        ++report_.pages_raw;
        if (raw_count_ == batch_limit_)
            flush_raw();
    }

    void flush() {
        flush_raw();
        flush_xbzrle();
        flush_zero();
    }

  private:
    // Under a bandwidth cap a raw batch holds about a tenth of a second's worth of pages, so
    // the link sees a steady trickle rather than a 1 MiB burst and then seconds of silence.
    static std::size_t raw_batch_limit(std::uint64_t bandwidth_limit) {
        if (bandwidth_limit == 0)
            return batch_pages;
        return std::clamp<std::size_t>(bandwidth_limit / 10 / page_size, 1, batch_pages);
    }
    void pace(std::size_t bytes) {
        if (options_.bandwidth_limit == 0)
            return;
        sent_in_window_ += bytes;
        double allowed_s =
            static_cast<double>(sent_in_window_) / static_cast<double>(options_.bandwidth_limit);
        double elapsed = std::chrono::duration<double>(clock_type::now() - window_start_).count();
        // Sleep in slices: a cancel must not wait for the pace of a slow cap.
        auto wake = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                            std::chrono::duration<double>(allowed_s - elapsed));
        while (clock_type::now() < wake) {
            if (cancelled(options_))
                throw Error(ErrorCode::cancelled, "migration cancelled");
            std::this_thread::sleep_until(
                std::min(wake, clock_type::now() + std::chrono::milliseconds(50)));
        }
        if (elapsed > 1.0) {
            window_start_ = clock_type::now();
            sent_in_window_ = 0;
        }
    }
    void flush_raw() {
        if (raw_count_ == 0)
            return;
        std::uint32_t n = static_cast<std::uint32_t>(raw_count_);
        for (int i = 0; i < 4; ++i)
            batch_[i] = static_cast<std::uint8_t>(n >> (8 * i));
        // A partial batch: close the gap between its index and its pages.
        std::size_t index_end = 4 + raw_count_ * 8;
        if (raw_count_ < batch_pages) {
            std::memmove(batch_.data() + index_end, batch_.data() + batch_header,
                         raw_count_ * page_size);
        }
        std::size_t length = index_end + raw_count_ * page_size;
        writer_.write(RecordType::pages, batch_.data(), length);
        pace(length);
        raw_count_ = 0;
    }
    void flush_xbzrle() {
        if (xbzrle_.empty())
            return;
        writer_.write(RecordType::xbzrle_pages, xbzrle_.data(), xbzrle_.size());
        pace(xbzrle_.size());
        xbzrle_.clear();
    }
    void flush_zero() {
        if (zero_start_.empty())
            return;
        wire::ZeroRuns z;
        for (std::size_t i = 0; i < zero_start_.size(); ++i) {
            z.add_start(zero_start_[i]);
            z.add_length(zero_length_[i]);
        }
        writer_.write(RecordType::zero_runs, serialize(z));
        zero_start_.clear();
        zero_length_.clear();
    }

    static constexpr std::size_t batch_header = 4 + batch_pages * 8; // count + pfn index
    RecordWriter& writer_;
    const GuestMemory& memory_;
    const SourceOptions& options_;
    Report& report_;
    std::vector<std::uint8_t> page_, delta_, batch_, xbzrle_;
    std::size_t batch_limit_;
    std::size_t raw_count_ = 0;
    bool first_pass_ = true;
    bool final_pass_ = false;
    std::vector<std::uint64_t> zero_start_, zero_length_;
    std::unordered_map<std::uint64_t, std::vector<std::uint8_t>> cache_;
    clock_type::time_point window_start_ = clock_type::now();
    std::uint64_t sent_in_window_ = 0;
};

// A pass ends when the link has taken all but this much of its data (a socket's send queue).
constexpr std::uint64_t drain_target_bytes = 128 << 10;
// The queue not shrinking for this long: the destination stopped taking data.
constexpr auto drain_stall_timeout = std::chrono::seconds(30);

// Waits until the peer has acknowledged all but drain_target_bytes of what was written, so
// that passes go at the link's pace and each pass's dirty set is what the guest dirtied while
// the previous pass actually travelled (not while the kernel buffered it).
void drain(const Channel& channel, const SourceOptions& o) {
    std::uint64_t last = channel.unsent_bytes();
    auto last_change = clock_type::now();
    while (last > drain_target_bytes) {
        if (cancelled(o))
            throw Error(ErrorCode::cancelled, "migration cancelled");
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        std::uint64_t now = channel.unsent_bytes();
        if (now < last) {
            last = now;
            last_change = clock_type::now();
        } else if (clock_type::now() - last_change > drain_stall_timeout) {
            throw Error(ErrorCode::timeout, "the destination stopped taking data (" +
                                                std::to_string(now) +
                                                " bytes queued for it did not move in 30 s)");
        }
    }
}

std::uint64_t count_bits(const std::vector<std::uint64_t>& bm) {
    std::uint64_t n = 0;
    for (auto w : bm)
        n += static_cast<std::uint64_t>(__builtin_popcountll(w));
    return n;
}

} // namespace

const char* to_string(Phase p) {
    switch (p) {
    case Phase::setup:
        return "setup";
    case Phase::precopy:
        return "precopy";
    case Phase::stop_and_copy:
        return "stop-and-copy";
    case Phase::completed:
        return "completed";
    case Phase::failed:
        return "failed";
    case Phase::cancelled:
        return "cancelled";
    }
    return "?";
}

nlohmann::ordered_json Report::to_json() const {
    return {{"ok", ok},
            {"phase", to_string(phase)},
            {"error", error},
            {"total_time_ms", total_time_ms},
            {"setup_time_ms", setup_time_ms},
            {"downtime_ms", downtime_ms},
            {"downtime_parts_ms",
             {{"pause", downtime.pause_ms},
              {"pages", downtime.pages_ms},
              {"state", downtime.state_ms},
              {"ack", downtime.ack_ms}}},
            {"bytes_on_wire", bytes_on_wire},
            {"guest_bytes", guest_bytes},
            {"pages", {{"raw", pages_raw}, {"zero", pages_zero}, {"xbzrle", pages_xbzrle}}},
            {"iterations", iterations},
            {"max_throttle_percent", max_throttle_percent},
            {"converged", converged}};
}

Report migrate_out(Channel& channel, GuestMemory& memory, DirtyLog& dirty, VmControl& vm,
                   StateProvider& state, const SourceOptions& o) {
    Report report;
    auto start = clock_type::now();
    std::uint64_t pages = memory.page_count();
    report.guest_bytes = pages * page_size;
    Progress progress;
    bool paused = false, logging = false;
    auto publish = [&](Phase phase) {
        progress.phase = phase;
        progress.bytes_sent = channel.bytes_written;
        if (o.on_progress)
            o.on_progress(progress);
    };
    try {
        RecordWriter writer(channel);
        wire::StreamHeader header;
        header.set_version_major(stream_version_major);
        header.set_version_minor(stream_version_minor);
        header.set_vm_name(o.vm_name);
        header.set_page_size(page_size);
        header.set_page_count(pages);
        header.set_live(o.live);
        writer.write(RecordType::header, serialize(header));
        if (!o.live) {
            vm.pause();
            paused = true;
        }
        dirty.enable();
        logging = true;
        report.setup_time_ms = ms_since(start);
        PageSender sender(writer, memory, o, report);

        std::vector<std::uint64_t> to_send((pages + 63) / 64, ~0ull);
        if (pages % 64)
            to_send.back() = (1ull << (pages % 64)) - 1;
        std::uint64_t remaining = pages, previous_dirty = pages;
        unsigned throttle = 0;
        bool switch_over = !o.live;
        const auto precopy_start = clock_type::now();
        const std::uint64_t precopy_bytes0 = channel.bytes_written;
        for (unsigned iteration = 0; !switch_over; ++iteration) {
            auto t0 = clock_type::now();
            std::uint64_t bytes0 = channel.bytes_written, zero0 = report.pages_zero;
            progress.iteration = iteration;
            sender.set_first_pass(iteration == 0);
            for (std::uint64_t w = 0; w < to_send.size(); ++w) {
                for (std::uint64_t bits = to_send[w]; bits != 0; bits &= bits - 1) {
                    sender.send(w * 64 + static_cast<std::uint64_t>(__builtin_ctzll(bits)));
                }
                if ((w & 63) == 0) {
                    if (cancelled(o))
                        throw Error(ErrorCode::cancelled, "migration cancelled");
                    progress.pages_remaining = remaining > w * 64 ? remaining - w * 64 : 0;
                    publish(Phase::precopy);
                }
            }
            sender.flush();
            drain(channel, o);
            double seconds = std::max(1e-6, ms_since(t0) / 1000.0);
            dirty.fetch_and_clear(to_send);
            std::uint64_t dirty_pages = count_bits(to_send);
            wire::IterationEnd end;
            end.set_iteration(iteration);
            end.set_pages_sent(remaining);
            end.set_dirty_pages_next(dirty_pages);
            writer.write(RecordType::iteration_end, serialize(end));
            report.iterations = iteration + 1;
            // The link's rate: what the peer acknowledged since pre-copy began. A write
            // returns once the kernel has the bytes, and a socket buffer of megabytes in front
            // of a slow link made a pass look many times faster than the link (a downtime
            // promised at 235 ms took 3.7 s, measured between two emulated hosts). Averaged
            // over all passes: a short pass may see no acknowledgement at all.
            std::uint64_t queued = channel.unsent_bytes();
            std::uint64_t delivered = channel.bytes_written - precopy_bytes0;
            delivered = delivered > queued ? delivered - queued : 0;
            progress.bandwidth_bytes_per_s =
                static_cast<double>(delivered) / std::max(1e-6, ms_since(precopy_start) / 1000.0);
            progress.dirty_rate_pages_per_s = static_cast<double>(dirty_pages) / seconds;
            // What one dirty page costs on the wire: the pass's bytes over the pages that
            // carried data. Zero pages cost a few bytes per run, and a first pass over a
            // mostly empty guest would otherwise promise a downtime ten times too short.
            std::uint64_t zero_pages = report.pages_zero - zero0;
            std::uint64_t data_pages = remaining > zero_pages ? remaining - zero_pages : 0;
            double bytes_per_page =
                data_pages ? static_cast<double>(channel.bytes_written - bytes0) / data_pages
                           : page_size;
            // The stop-and-copy waits for what is still queued too.
            double to_deliver = dirty_pages * bytes_per_page + static_cast<double>(queued);
            // Nothing delivered in a whole pass: no rate to promise a downtime with.
            const bool rate_known = progress.bandwidth_bytes_per_s > 0;
            progress.expected_downtime_ms =
                rate_known ? to_deliver / progress.bandwidth_bytes_per_s * 1000.0 : 0;
            progress.pages_remaining = dirty_pages;
            progress.percent = std::max(
                progress.percent, 100.0 * (1.0 - static_cast<double>(dirty_pages) / pages) * 0.99);
            progress.throttle_percent = throttle;
            publish(Phase::precopy);
            if ((rate_known || to_deliver == 0) &&
                progress.expected_downtime_ms <= o.downtime_limit_ms) {
                report.converged = true;
                switch_over = true;
            } else if (iteration + 1 >= o.max_iterations ||
                       (o.max_bytes && channel.bytes_written >= o.max_bytes)) {
                switch_over = true; // caps reached: downtime will exceed the limit
            } else if (o.auto_converge && dirty_pages * 10 >= previous_dirty * 9) {
                // The dirty set is not shrinking: slow the guest down (20%, then +10% each pass).
                throttle = throttle == 0 ? 20 : std::min(99u, throttle + 10);
                vm.set_throttle(throttle);
                report.max_throttle_percent = std::max(report.max_throttle_percent, throttle);
            }
            previous_dirty = dirty_pages;
            remaining = dirty_pages;
        }

        // Stop-and-copy: from here the guest is paused until the destination has everything.
        if (cancelled(o))
            throw Error(ErrorCode::cancelled, "migration cancelled");
        auto stop = clock_type::now();
        if (!paused) {
            vm.pause();
            paused = true;
        }
        report.downtime.pause_ms = ms_since(stop);
        auto mark = clock_type::now();
        publish(Phase::stop_and_copy);
        sender.set_first_pass(!o.live);
        sender.set_final_pass(true);
        if (o.live) {
            // Still to send: the last pass's dirty set plus whatever was dirtied since.
            std::vector<std::uint64_t> since;
            dirty.fetch_and_clear(since);
            for (std::size_t i = 0; i < to_send.size() && i < since.size(); ++i)
                to_send[i] |= since[i];
            for (std::uint64_t w = 0; w < to_send.size(); ++w) {
                for (std::uint64_t bits = to_send[w]; bits != 0; bits &= bits - 1) {
                    sender.send(w * 64 + static_cast<std::uint64_t>(__builtin_ctzll(bits)));
                }
            }
        } else {
            for (std::uint64_t pfn = 0; pfn < pages; ++pfn)
                sender.send(pfn);
        }
        sender.flush();
        report.downtime.pages_ms = ms_since(mark);
        mark = clock_type::now();
        for (const StateBlob& b : state.save_state()) {
            wire::StateBlob s;
            s.set_kind(b.kind);
            s.set_id(b.id);
            s.set_data(b.data.data(), b.data.size());
            writer.write(RecordType::state, serialize(s));
        }
        if (cancelled(o))
            throw Error(ErrorCode::cancelled, "migration cancelled during stop-and-copy");
        wire::EndOfStream eos;
        eos.set_total_pages(pages);
        if (o.digest) {
            auto d = memory_digest(memory);
            eos.set_memory_digest(d.data(), d.size());
        }
        writer.write(RecordType::end, serialize(eos));
        report.downtime.state_ms = ms_since(mark);
        mark = clock_type::now();
        // The destination acknowledges once it holds a complete, verified VM. A saved state
        // (file) is complete once written and synced.
        if (channel.has_peer()) {
            RecordReader reader(channel);
            const Record& ack_record = reader.next();
            wire::Ack ack;
            if (ack_record.type != static_cast<std::uint16_t>(RecordType::ack) ||
                !ack.ParseFromArray(ack_record.payload.data(),
                                    static_cast<int>(ack_record.payload.size()))) {
                throw Error(ErrorCode::protocol,
                            "destination answered END with something other than an ACK");
            }
            if (!ack.ok())
                throw Error(ErrorCode::failed, "destination refused the VM: " + ack.error());
        } else {
            channel.close(); // fsync
        }
        report.downtime.ack_ms = ms_since(mark);
        report.downtime_ms = ms_since(stop);
        dirty.disable();
        vm.set_throttle(0);
        report.ok = true;
        report.phase = Phase::completed;
        progress.percent = 100;
        publish(Phase::completed);
    } catch (const Error& e) {
        // Roll back: the source VM runs on, unchanged.
        report.ok = false;
        report.phase = e.code() == ErrorCode::cancelled ? Phase::cancelled : Phase::failed;
        report.error = e.what();
        try {
            if (logging)
                dirty.disable();
            vm.set_throttle(0);
            if (paused)
                vm.resume();
        } catch (...) {
        }
        channel.close();
        publish(report.phase);
    } catch (const std::exception& e) {
        report.ok = false;
        report.phase = Phase::failed;
        report.error = std::string("internal error: ") + e.what();
        if (logging)
            dirty.disable();
        vm.set_throttle(0);
        if (paused)
            vm.resume();
        channel.close();
    }
    report.bytes_on_wire = channel.bytes_written;
    report.total_time_ms = ms_since(start);
    return report;
}

IncomingResult migrate_in(Channel& channel, IncomingVm& vm, const std::atomic<bool>* cancel) {
    IncomingResult result;
    bool created = false;
    GuestMemory* memory = nullptr;
    RecordWriter writer(channel);
    std::vector<StateBlob> state;
    std::vector<std::uint8_t> zero(page_size, 0), page(page_size);
    enum class Stage { expect_header, pages, state, done } stage = Stage::expect_header;
    auto need = [&](bool ok, const std::string& what) {
        if (!ok)
            throw Error(ErrorCode::protocol, "migration stream: " + what);
    };
    auto check_pfn = [&](std::uint64_t pfn) {
        need(pfn < result.pages, "page " + std::to_string(pfn) + " is outside the VM's " +
                                     std::to_string(result.pages) + " pages");
    };
    try {
        RecordReader reader(channel);
        while (stage != Stage::done) {
            if (cancel != nullptr && cancel->load())
                throw Error(ErrorCode::cancelled, "incoming migration cancelled");
            const Record& r = reader.next();
            auto type = static_cast<RecordType>(r.type);
            const int size = static_cast<int>(r.payload.size());
            switch (type) {
            case RecordType::header: {
                need(stage == Stage::expect_header, "second HEADER record");
                wire::StreamHeader h;
                need(h.ParseFromArray(r.payload.data(), size), "malformed HEADER");
                if (h.version_major() != stream_version_major) {
                    throw Error(ErrorCode::unsupported,
                                "migration stream version " + std::to_string(h.version_major()) +
                                    " is not supported (this host speaks " +
                                    std::to_string(stream_version_major) + ")");
                }
                need(h.page_size() == page_size,
                     "page size " + std::to_string(h.page_size()) + " is not 4096");
                need(h.page_count() > 0 && h.page_count() <= (1ull << 40) / page_size,
                     "absurd VM size");
                result.vm_name = h.vm_name();
                result.pages = h.page_count();
                memory = &vm.create(h.vm_name(), h.page_count());
                created = true;
                stage = Stage::pages;
                break;
            }
            case RecordType::pages: {
                need(stage == Stage::pages, "PAGES record out of order");
                PagesView v = parse_pages(r.payload);
                for (std::size_t i = 0; i < v.pfns.size(); ++i) {
                    check_pfn(v.pfns[i]);
                    memory->write_page(v.pfns[i], v.data + i * page_size);
                }
                break;
            }
            case RecordType::zero_runs: {
                need(stage == Stage::pages, "ZERO_RUNS record out of order");
                wire::ZeroRuns z;
                need(z.ParseFromArray(r.payload.data(), size) && z.start_size() == z.length_size(),
                     "malformed ZERO_RUNS");
                for (int i = 0; i < z.start_size(); ++i) {
                    need(z.length(i) <= result.pages && z.start(i) <= result.pages - z.length(i),
                         "zero run outside the VM");
                    for (std::uint64_t p = z.start(i); p < z.start(i) + z.length(i); ++p)
                        memory->write_page(p, zero.data());
                }
                break;
            }
            case RecordType::xbzrle_pages: {
                need(stage == Stage::pages, "XBZRLE record out of order");
                const std::uint8_t* p = r.payload.data();
                const std::uint8_t* end = p + r.payload.size();
                while (p < end) {
                    need(end - p >= 12, "truncated XBZRLE entry");
                    std::uint64_t pfn = 0, len = 0;
                    for (int i = 7; i >= 0; --i)
                        pfn = (pfn << 8) | p[i];
                    for (int i = 3; i >= 0; --i)
                        len = (len << 8) | p[8 + i];
                    p += 12;
                    need(len <= static_cast<std::uint64_t>(end - p),
                         "XBZRLE entry longer than its record");
                    check_pfn(pfn);
                    memory->read_page(pfn, page.data());
                    need(xbzrle::decode(p, len, page.data(), page_size), "malformed XBZRLE delta");
                    memory->write_page(pfn, page.data());
                    p += len;
                }
                break;
            }
            case RecordType::iteration_end:
                need(stage == Stage::pages, "ITERATION_END out of order");
                break;
            case RecordType::state: {
                need(stage == Stage::pages || stage == Stage::state, "STATE record out of order");
                wire::StateBlob s;
                need(s.ParseFromArray(r.payload.data(), size), "malformed STATE");
                state.push_back({s.kind(), s.id(),
                                 std::vector<std::uint8_t>(s.data().begin(), s.data().end())});
                stage = Stage::state;
                break;
            }
            case RecordType::end: {
                need(stage == Stage::pages || stage == Stage::state, "END before HEADER");
                wire::EndOfStream e;
                need(e.ParseFromArray(r.payload.data(), size), "malformed END");
                need(e.total_pages() == result.pages,
                     "END disagrees with HEADER on the page count");
                if (!e.memory_digest().empty()) {
                    auto d = memory_digest(*memory);
                    need(e.memory_digest().size() == d.size() &&
                             std::memcmp(e.memory_digest().data(), d.data(), d.size()) == 0,
                         "memory digest mismatch: the VM received differs from the VM sent");
                }
                auto restore_start = clock_type::now();
                vm.restore(state);
                result.restore_ms = ms_since(restore_start);
                stage = Stage::done;
                break;
            }
            default:
                need((r.flags & flag_optional) != 0,
                     "unknown mandatory record type " + std::to_string(r.type));
                break; // optional records of newer streams are skipped
            }
        }
        if (channel.has_peer()) {
            wire::Ack ack;
            ack.set_ok(true);
            writer.write(RecordType::ack, serialize(ack));
        }
        vm.start();
        result.ok = true;
    } catch (const Error& e) {
        result.error = e.what();
        if (created)
            vm.discard();
        try {
            if (!channel.has_peer())
                throw Error(ErrorCode::internal, "no peer");
            wire::Ack ack;
            ack.set_ok(false);
            ack.set_error(e.what());
            writer.write(RecordType::ack, serialize(ack));
        } catch (...) {
        }
        channel.close();
    }
    result.bytes_received = channel.bytes_read;
    return result;
}

} // namespace godwit::migration
