// godwit-state-probe: checks, from the root partition, the hypervisor's save/restore and
// migration primitives on a real guest (hypercall ABI 1.3 and 1.4):
//  - dirty logging: the memory-dirtying guest runs a few passes with logging on; every page
//    of its range must be logged, pages it never writes (below its image) must not be, and
//    a second fetch must come back empty;
//  - extra vCPU state: get → set → get returns the same, and a corrupted LAPIC blob is
//    refused without changing the vCPU;
//  - IOAPIC state: get → set round trip, and a corrupted blob is refused;
//  - FPU state (1.4): the guest's XSAVE area reads back, a changed one round-trips, and
//    reserved MXCSR / XSTATE_BV bits or an invalid XCR0 are refused without changing it.
// Prints "PASS <check>" / "FAIL <check>: why" lines, then "state-probe: PASS" or exits 1.
//   godwit-state-probe --kernel dirty.elf [--device /dev/godwit] [--write-protect]
// (--write-protect: dirty logging by EPT write protection even where the CPU has PML.)
#include <boost/program_options.hpp>

#include <cstdio>
#include <cstring>
#include <iostream>

#include "abi/godwit_hypercall.h"
#include "godwit/error.hpp"
#include "godwit/vmm/godwit_backend.hpp"
#include "godwit/vmm/vm_platform.hpp"
#include "godwit/vmm/vm_runner.hpp"

namespace po = boost::program_options;
using namespace godwit;

namespace {

int failures = 0;

void check(bool ok, const std::string& what, const std::string& why = "") {
    if (ok) {
        std::printf("PASS %s\n", what.c_str());
    } else {
        std::printf("FAIL %s: %s\n", what.c_str(), why.c_str());
        ++failures;
    }
    std::fflush(stdout);
}

bool bit(const std::vector<std::uint64_t>& bitmap, std::uint64_t page) {
    return page / 64 < bitmap.size() && ((bitmap[page / 64] >> (page % 64)) & 1) != 0;
}

godwit_hc_vcpu_extra as_extra(const std::vector<std::uint8_t>& blob) {
    godwit_hc_vcpu_extra x{};
    std::memcpy(&x, blob.data(), std::min(blob.size(), sizeof x));
    return x;
}

} // namespace

int main(int argc, char** argv) {
    po::options_description options("godwit-state-probe options");
    options.add_options()("help,h", "this help")("kernel", po::value<std::string>()->required(),
                                                 "the dirty.elf test guest")(
        "device", po::value<std::string>()->default_value("/dev/godwit"), "the root driver")(
        "write-protect", "log dirty pages by EPT write protection even where the CPU has PML");
    try {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, options), vm);
        if (vm.count("help")) {
            std::cout << "Checks dirty logging and vCPU/IOAPIC state save/restore on a real "
                         "guest partition.\n"
                      << options;
            return 0;
        }
        po::notify(vm);
        constexpr std::uint64_t dirty_mb = 4;
        vmm::VmDefinition def;
        def.name = "state-probe";
        def.vcpus = 1;
        def.memory_mib = 16;
        def.kernel = vm["kernel"].as<std::string>();
        def.cmdline = "passes=2 dirty_mb=" + std::to_string(dirty_mb);
        std::string console;
        vmm::VmPlatform::Options popts;
        popts.console_stream = [&console](std::uint8_t byte) { console.push_back(char(byte)); };
        vmm::VmPlatform platform(def, popts);
        vmm::GodwitBackend backend(platform.memory(), def.vcpus, vm["device"].as<std::string>());
        backend.set_state(0, platform.initial_vcpu_states()[0]);

        if (vm.count("write-protect"))
            backend.dirty_log_enable_write_protect();
        else
            backend.dirty_log_enable();
        vmm::VmRunner runner(platform, backend, def.vcpus);
        vmm::VmStop stop = runner.run();
        std::fputs(console.c_str(), stdout);
        check(stop.reason == vmm::VmStop::Reason::debug_exit && stop.result == 1,
              "dirty guest ran 2 passes with dirty logging on", stop.describe());

        // The guest's range: "dirty: range 0xSTART-0xEND, N pages".
        unsigned start = 0, end = 0, pages = 0;
        const char* line = std::strstr(console.c_str(), "dirty: range ");
        bool parsed = line != nullptr && std::sscanf(line, "dirty: range 0x%x-0x%x, %u pages",
                                                     &start, &end, &pages) == 3;
        check(parsed && end > start, "the guest reported its range", console.substr(0, 300));
        std::vector<std::uint64_t> bitmap;
        backend.dirty_log_fetch(bitmap);
        std::uint64_t in_range = 0, outside = 0;
        for (std::uint64_t page = 0; page < bitmap.size() * 64; ++page) {
            if (!bit(bitmap, page))
                continue;
            if (page >= start / 4096 && page < end / 4096)
                ++in_range;
            else
                ++outside;
        }
        std::printf("state-probe: %llu pages logged in the guest's range of %u, %llu outside\n",
                    static_cast<unsigned long long>(in_range), pages,
                    static_cast<unsigned long long>(outside));
        check(parsed && in_range == pages, "every page the guest dirtied is logged",
              std::to_string(in_range) + " of " + std::to_string(pages));
        // Outside its range the guest writes only its own data and stack (a few pages).
        check(outside < 64, "few pages logged outside the guest's range", std::to_string(outside));
        // Above its range nothing writes guest RAM: not one page there may be logged.
        std::uint64_t above = 0;
        for (std::uint64_t page = end / 4096; page < bitmap.size() * 64; ++page)
            above += bit(bitmap, page) ? 1 : 0;
        check(parsed && above == 0, "no page above the guest's range is logged",
              std::to_string(above) + " pages");
        backend.dirty_log_fetch(bitmap);
        std::uint64_t again = 0;
        for (std::uint64_t word : bitmap)
            again += static_cast<std::uint64_t>(__builtin_popcountll(word));
        check(again == 0, "a second fetch is empty (the fetch cleared the log)",
              std::to_string(again) + " pages");
        backend.dirty_log_disable();

        // Extra vCPU state round trip.
        std::vector<std::uint8_t> extra = backend.get_vcpu_extra(0);
        godwit_hc_vcpu_extra x = as_extra(extra);
        check(x.format == GODWIT_VCPU_EXTRA_FORMAT && x.lapic_bytes > 0 && x.guest_tsc != 0,
              "extra vCPU state reads (format, LAPIC blob, guest TSC)");
        backend.set_vcpu_extra(0, extra);
        godwit_hc_vcpu_extra y = as_extra(backend.get_vcpu_extra(0));
        bool same = y.mp_state == x.mp_state && y.pat == x.pat &&
                    y.interruptibility == x.interruptibility &&
                    y.pending_event == x.pending_event && y.lapic_bytes == x.lapic_bytes &&
                    std::memcmp(y.lapic, x.lapic, 64) == 0 && y.guest_tsc >= x.guest_tsc;
        check(same, "extra vCPU state: set then get returns it (the guest TSC continues)");
        std::vector<std::uint8_t> bad = extra;
        auto* bx = reinterpret_cast<godwit_hc_vcpu_extra*>(bad.data());
        std::memset(bx->lapic, 0xA5, 16); // format/size/id of the LAPIC blob corrupted
        bool refused = false;
        try {
            backend.set_vcpu_extra(0, bad);
        } catch (const Error&) {
            refused = true;
        }
        check(refused, "a corrupted LAPIC state is refused");
        godwit_hc_vcpu_extra z = as_extra(backend.get_vcpu_extra(0));
        check(std::memcmp(z.lapic, x.lapic, 64) == 0, "the refused state changed nothing");

        std::vector<std::uint8_t> chip = backend.get_irqchip();
        backend.set_irqchip(chip);
        check(backend.get_irqchip() == chip, "IOAPIC state: set then get returns it");
        std::vector<std::uint8_t> bad_chip = chip;
        std::memset(bad_chip.data() + 8, 0xFF, 8);
        refused = false;
        try {
            backend.set_irqchip(bad_chip);
        } catch (const Error&) {
            refused = true;
        }
        check(refused && backend.get_irqchip() == chip,
              "a corrupted IOAPIC state is refused and changes nothing");

        vmm::VcpuState st = backend.get_state(0);
        auto field = [](const std::vector<std::uint8_t>& area, std::size_t offset,
                        std::size_t bytes) {
            std::uint64_t v = 0;
            if (area.size() >= offset + bytes)
                std::memcpy(&v, area.data() + offset, bytes);
            return v;
        };
        check(st.xsave_area.size() >= 576 && st.xsave_area.size() <= GODWIT_FPU_AREA_BYTES &&
                  field(st.xsave_area, 0, 2) == 0x37F && field(st.xsave_area, 24, 4) == 0x1F80 &&
                  st.xcr0 == 1,
              "FPU state reads: the reset state of a guest that never used it (FCW 0x37F, "
              "MXCSR 0x1F80, XCR0 1)",
              std::to_string(st.xsave_area.size()) + " bytes, xcr0 " + std::to_string(st.xcr0));
        vmm::VcpuState changed = st;
        if (changed.xsave_area.size() >= 576) {
            const std::uint16_t fcw = 0x27F;
            std::memcpy(changed.xsave_area.data(), &fcw, 2);
            for (std::size_t i = 0; i < 16; ++i)
                changed.xsave_area[160 + i] = static_cast<std::uint8_t>(0x30 + i); // XMM0
            const std::uint64_t bv = field(changed.xsave_area, 512, 8) | 3;
            std::memcpy(changed.xsave_area.data() + 512, &bv, 8);
        }
        backend.set_state(0, changed);
        vmm::VcpuState back = backend.get_state(0);
        check(back.xsave_area.size() >= 576 &&
                  std::memcmp(back.xsave_area.data(), changed.xsave_area.data(), 2) == 0 &&
                  std::memcmp(back.xsave_area.data() + 160, changed.xsave_area.data() + 160, 16) ==
                      0 &&
                  field(back.xsave_area, 512, 8) == field(changed.xsave_area, 512, 8),
              "FPU state: set then get returns it (FCW, XMM0, XSTATE_BV)");
        auto refused_fpu = [&](vmm::VcpuState bad_state) {
            try {
                backend.set_state(0, bad_state);
            } catch (const Error&) {
                return backend.get_state(0).xsave_area == back.xsave_area;
            }
            return false;
        };
        vmm::VcpuState bad_fpu = changed;
        const std::uint32_t bad_mxcsr = 0x1F80u | (1u << 31);
        std::memcpy(bad_fpu.xsave_area.data() + 24, &bad_mxcsr, 4);
        check(refused_fpu(bad_fpu), "a reserved MXCSR bit is refused and changes nothing");
        bad_fpu = changed;
        const std::uint64_t bad_bv = field(changed.xsave_area, 512, 8) | (1ull << 63);
        std::memcpy(bad_fpu.xsave_area.data() + 512, &bad_bv, 8);
        check(refused_fpu(bad_fpu), "a reserved XSTATE_BV bit is refused and changes nothing");
        bad_fpu = changed;
        bad_fpu.xcr0 = 5; // AVX without SSE
        check(refused_fpu(bad_fpu), "an invalid XCR0 is refused and changes nothing");
        backend.set_state(0, st);

        std::printf("state-probe: %s\n", failures == 0 ? "PASS" : "FAIL");
        return failures == 0 ? 0 : 1;
    } catch (const std::exception& e) {
        std::printf("FAIL state-probe: %s\nstate-probe: FAIL\n", e.what());
        return 1;
    }
}
