#include "godwit/vmm/godwit_backend.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <x86intrin.h>

#include <algorithm>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

#include "abi/godwit_ioctl.h"
#include "godwit/error.hpp"

namespace godwit::vmm {
namespace {

godwit_hc_segment segment(const SegmentRegister& s) {
    godwit_hc_segment out{};
    out.base = s.base;
    out.limit = s.limit;
    out.selector = s.selector;
    // VMX's "unusable" is bit 16; the ABI carries it in reserved bit 8 (GODWIT_SEG_UNUSABLE).
    out.access_rights = static_cast<godwit_u16>(
        (s.access_rights & 0xF0FF) | ((s.access_rights & (1u << 16)) ? GODWIT_SEG_UNUSABLE : 0));
    return out;
}

} // namespace

// TSC cycles per microsecond, measured against the steady clock over 10 ms (only used to
// size idle sleeps; the TSC itself decides when a deadline is reached).
static std::uint64_t measure_tsc_per_us() {
    auto t0 = std::chrono::steady_clock::now();
    std::uint64_t c0 = __rdtsc();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::uint64_t c1 = __rdtsc();
    auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    std::uint64_t rate = us > 0 ? (c1 - c0) / static_cast<std::uint64_t>(us) : 1;
    return rate > 0 ? rate : 1;
}

GodwitBackend::GodwitBackend(GuestMemory& memory, unsigned vcpus, const std::string& device)
    : vcpus_(vcpus), tsc_per_us_(measure_tsc_per_us()) {
    if (vcpus == 0 || vcpus > GODWIT_MAX_VCPUS)
        throw Error(ErrorCode::invalid_input,
                    "Godwit partitions have 1 to " + std::to_string(GODWIT_MAX_VCPUS) + " vCPUs");
    fd_ = ::open(device.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0)
        throw Error(ErrorCode::unsupported, device + ": " + std::strerror(errno) +
                                                " (not a Godwit host, or godwit.ko not loaded)");
    godwit_ioctl_partition_create create{};
    create.ram_bytes = memory.ranges().back().end();
    create.vcpus = vcpus;
    if (::ioctl(fd_, GODWIT_IOCTL_PARTITION_CREATE, &create) != 0) {
        int err = errno;
        ::close(fd_);
        throw system_error("GODWIT_IOCTL_PARTITION_CREATE", err);
    }
    id_ = create.id;
    ram_pages_ = create.ram_bytes / 4096;
    for (const RamRange& r : memory.ranges()) {
        godwit_ioctl_map map{};
        map.id = id_;
        map.guest_gpa = r.guest_base;
        map.user_address =
            reinterpret_cast<godwit_u64>(memory.host_span(r.guest_base, r.size).data());
        map.bytes = r.size;
        if (::ioctl(fd_, GODWIT_IOCTL_PARTITION_MAP, &map) != 0) {
            int err = errno;
            ::close(fd_);
            throw system_error("GODWIT_IOCTL_PARTITION_MAP", err);
        }
    }
}

GodwitBackend::~GodwitBackend() {
    if (fd_ >= 0)
        ::close(fd_);
}

void GodwitBackend::set_state(unsigned vcpu, const VcpuState& s) {
    godwit_ioctl_vcpu_state req{};
    req.id = id_;
    req.vcpu = vcpu;
    godwit_hc_vcpu_state& o = req.state;
    const std::uint64_t gpr[16] = {s.rax, s.rcx, s.rdx, s.rbx, s.rsp, s.rbp, s.rsi, s.rdi,
                                   s.r8,  s.r9,  s.r10, s.r11, s.r12, s.r13, s.r14, s.r15};
    for (int i = 0; i < 16; ++i)
        o.gpr[i] = gpr[i];
    o.rip = s.rip;
    o.rflags = s.rflags;
    o.cr0 = s.cr0;
    o.cr3 = s.cr3;
    o.cr4 = s.cr4;
    o.efer = s.efer;
    o.segments[GODWIT_SEG_ES] = segment(s.es);
    o.segments[GODWIT_SEG_CS] = segment(s.cs);
    o.segments[GODWIT_SEG_SS] = segment(s.ss);
    o.segments[GODWIT_SEG_DS] = segment(s.ds);
    o.segments[GODWIT_SEG_FS] = segment(s.fs);
    o.segments[GODWIT_SEG_GS] = segment(s.gs);
    o.segments[GODWIT_SEG_LDTR] = segment(s.ldtr);
    o.segments[GODWIT_SEG_TR] = segment(s.tr);
    o.gdtr_base = s.gdtr.base;
    o.gdtr_limit = s.gdtr.limit;
    o.idtr_base = s.idtr.base;
    o.idtr_limit = s.idtr.limit;
    if (::ioctl(fd_, GODWIT_IOCTL_VCPU_SET_STATE, &req) != 0)
        throw system_error("GODWIT_IOCTL_VCPU_SET_STATE", errno);
    set_fpu(vcpu, s);
}

// The x87/SSE/AVX state (ABI 1.4): VcpuState::xsave_area in the standard XSAVE format, empty
// for the reset state (FCW 0x37F, MXCSR 0x1F80, every register zero).
void GodwitBackend::set_fpu(unsigned vcpu, const VcpuState& s) {
    auto x = std::make_unique<godwit_ioctl_vcpu_fpu>();
    x->id = id_;
    x->vcpu = vcpu;
    x->fpu.format = GODWIT_FPU_FORMAT;
    x->fpu.xcr0 = s.xcr0;
    constexpr std::size_t minimum = GODWIT_FPU_LEGACY_BYTES + GODWIT_FPU_HEADER_BYTES;
    if (s.xsave_area.empty()) {
        x->fpu.area_bytes = minimum;
        const std::uint16_t fcw = 0x37F;
        const std::uint32_t mxcsr = 0x1F80;
        std::memcpy(x->fpu.xsave, &fcw, sizeof fcw);
        std::memcpy(x->fpu.xsave + 24, &mxcsr, sizeof mxcsr);
    } else {
        if (s.xsave_area.size() < minimum || s.xsave_area.size() > GODWIT_FPU_AREA_BYTES)
            throw Error(ErrorCode::invalid_input,
                        "vCPU " + std::to_string(vcpu) + ": an XSAVE area of " +
                            std::to_string(s.xsave_area.size()) + " bytes (" +
                            std::to_string(minimum) + " to " +
                            std::to_string(GODWIT_FPU_AREA_BYTES) + ")");
        x->fpu.area_bytes = static_cast<std::uint32_t>(s.xsave_area.size());
        std::memcpy(x->fpu.xsave, s.xsave_area.data(), s.xsave_area.size());
    }
    if (::ioctl(fd_, GODWIT_IOCTL_VCPU_SET_FPU, x.get()) != 0) {
        if (errno == EINVAL)
            throw Error(ErrorCode::invalid_input,
                        "vCPU " + std::to_string(vcpu) +
                            ": the hypervisor refused its FPU state (XCR0, XSTATE_BV or MXCSR "
                            "this CPU does not support)");
        throw system_error("GODWIT_IOCTL_VCPU_SET_FPU", errno);
    }
}

VcpuState GodwitBackend::get_state(unsigned vcpu) {
    godwit_ioctl_vcpu_state req{};
    req.id = id_;
    req.vcpu = vcpu;
    if (::ioctl(fd_, GODWIT_IOCTL_VCPU_GET_STATE, &req) != 0)
        throw system_error("GODWIT_IOCTL_VCPU_GET_STATE", errno);
    const godwit_hc_vcpu_state& o = req.state;
    VcpuState s;
    std::uint64_t* gpr[16] = {&s.rax, &s.rcx, &s.rdx, &s.rbx, &s.rsp, &s.rbp, &s.rsi, &s.rdi,
                              &s.r8,  &s.r9,  &s.r10, &s.r11, &s.r12, &s.r13, &s.r14, &s.r15};
    for (int i = 0; i < 16; ++i)
        *gpr[i] = o.gpr[i];
    s.rip = o.rip;
    s.rflags = o.rflags;
    s.cr0 = o.cr0;
    s.cr3 = o.cr3;
    s.cr4 = o.cr4;
    s.efer = o.efer;
    SegmentRegister* segs[GODWIT_SEG_COUNT] = {&s.es, &s.cs, &s.ss,   &s.ds,
                                               &s.fs, &s.gs, &s.ldtr, &s.tr};
    for (unsigned i = 0; i < GODWIT_SEG_COUNT; ++i) {
        segs[i]->selector = o.segments[i].selector;
        segs[i]->base = o.segments[i].base;
        segs[i]->limit = o.segments[i].limit;
        std::uint32_t ar = o.segments[i].access_rights;
        segs[i]->access_rights = (ar & 0xF0FF) | ((ar & GODWIT_SEG_UNUSABLE) ? (1u << 16) : 0);
    }
    s.gdtr = DescriptorTable{o.gdtr_base, static_cast<std::uint16_t>(o.gdtr_limit)};
    s.idtr = DescriptorTable{o.idtr_base, static_cast<std::uint16_t>(o.idtr_limit)};
    auto x = std::make_unique<godwit_ioctl_vcpu_fpu>();
    x->id = id_;
    x->vcpu = vcpu;
    if (::ioctl(fd_, GODWIT_IOCTL_VCPU_GET_FPU, x.get()) != 0)
        throw system_error("GODWIT_IOCTL_VCPU_GET_FPU", errno);
    std::size_t bytes = std::min<std::size_t>(x->fpu.area_bytes, GODWIT_FPU_AREA_BYTES);
    s.xcr0 = x->fpu.xcr0;
    s.xsave_area.assign(x->fpu.xsave, x->fpu.xsave + bytes);
    return s;
}

VcpuExit GodwitBackend::run(unsigned vcpu, const IoAccess* completed) {
    godwit_ioctl_vcpu_run req{};
    req.id = id_;
    req.vcpu = vcpu;
    if (completed != nullptr && !completed->is_write) {
        req.run.flags = GODWIT_RUN_COMPLETE_READ;
        req.run.read_value = completed->data;
    }
    Idle& idle = idle_[vcpu];
    for (;;) {
        if (idle.stop.exchange(false)) {
            // A read the VMM completed still gets its value: the vCPU's state stays whole.
            if ((req.run.flags & GODWIT_RUN_COMPLETE_READ) != 0)
                complete_read(vcpu, *completed);
            return VcpuExit{VcpuExit::Kind::kicked, {}};
        }
        idle.woken.store(false);
        if (::ioctl(fd_, GODWIT_IOCTL_VCPU_RUN, &req) != 0)
            throw system_error("GODWIT_IOCTL_VCPU_RUN", errno);
        req.run.flags = 0; // whatever was pending is complete
        const godwit_hc_vcpu_run& r = req.run;
        wake_vcpus(r.wake_mask);
        VcpuExit exit{};
        switch (r.exit_reason) {
        case GODWIT_EXIT_INTERRUPTED:
            continue;
        case GODWIT_EXIT_HLT:
            wait_idle(vcpu, r.wake_tsc);
            continue;
        case GODWIT_EXIT_IO:
            exit.kind = VcpuExit::Kind::port_io;
            exit.access = IoAccess{r.port, r.size, r.direction == 0, r.value};
            return exit;
        case GODWIT_EXIT_MMIO:
            exit.kind = VcpuExit::Kind::mmio;
            exit.access = IoAccess{r.gpa, r.size, r.direction == 0, r.value};
            return exit;
        case GODWIT_EXIT_MEMORY:
            // Outside RAM with an instruction the hypervisor does not emulate: no device
            // model can take it, so the VM stops with this address.
            exit.kind = VcpuExit::Kind::unhandled_memory;
            exit.access = IoAccess{r.gpa, 4, ((r.qualification >> 1) & 1) != 0, 0};
            return exit;
        default:
            exit.kind = VcpuExit::Kind::shutdown;
            return exit;
        }
    }
}

void GodwitBackend::wait_idle(unsigned vcpu, std::uint64_t wake_tsc) {
    // The TSC rate is not needed exactly: sleep in slices of at most 1 ms (less when the
    // deadline is nearer by the estimate) and look at the TSC again.
    Idle& idle = idle_[vcpu];
    std::unique_lock lock(idle.mutex);
    for (;;) {
        if (idle.woken.exchange(false) || idle.stop.load())
            return;
        std::chrono::microseconds slice{1000};
        if (wake_tsc != 0) {
            std::uint64_t now = __rdtsc();
            if (now >= wake_tsc)
                return;
            std::uint64_t us = (wake_tsc - now) / tsc_per_us_;
            if (us < 1000)
                slice = std::chrono::microseconds{us + 1};
        }
        idle.cv.wait_for(lock, slice);
    }
}

void GodwitBackend::wake_vcpus(std::uint32_t mask) {
    for (unsigned v = 0; v < vcpus_; ++v) {
        if (mask & (1u << v)) {
            std::scoped_lock lock(idle_[v].mutex);
            idle_[v].woken.store(true);
            idle_[v].cv.notify_all();
        }
    }
}

void GodwitBackend::complete_read(unsigned vcpu, const IoAccess& read) {
    godwit_ioctl_vcpu_run req{};
    req.id = id_;
    req.vcpu = vcpu;
    req.run.flags = GODWIT_RUN_NO_ENTRY | (read.is_write ? 0 : GODWIT_RUN_COMPLETE_READ);
    req.run.read_value = read.data;
    if (::ioctl(fd_, GODWIT_IOCTL_VCPU_RUN, &req) != 0)
        throw system_error("GODWIT_IOCTL_VCPU_RUN (complete a read)", errno);
}

void GodwitBackend::dirty_log_op(unsigned op, const char* what) {
    godwit_ioctl_dirty d{};
    d.id = id_;
    d.op = op;
    if (::ioctl(fd_, GODWIT_IOCTL_DIRTY_LOG, &d) != 0)
        throw system_error(std::string("GODWIT_IOCTL_DIRTY_LOG (") + what + ")", errno);
}

void GodwitBackend::dirty_log_enable() {
    dirty_log_op(GODWIT_DIRTY_ENABLE, "enable");
}

void GodwitBackend::dirty_log_enable_write_protect() {
    dirty_log_op(GODWIT_DIRTY_ENABLE_WRITE_PROTECT, "enable by write protection");
}

void GodwitBackend::dirty_log_disable() {
    dirty_log_op(GODWIT_DIRTY_DISABLE, "disable");
}

void GodwitBackend::dirty_log_fetch(std::vector<std::uint64_t>& bitmap) {
    bitmap.assign((ram_pages_ + 63) / 64, 0);
    for (std::uint64_t first = 0; first < ram_pages_; first += GODWIT_DIRTY_FETCH_MAX_PAGES) {
        std::uint64_t pages = std::min<std::uint64_t>(GODWIT_DIRTY_FETCH_MAX_PAGES,
                                                      (ram_pages_ - first + 63) / 64 * 64);
        godwit_ioctl_dirty d{};
        d.id = id_;
        d.op = GODWIT_DIRTY_FETCH;
        d.first_page = first;
        d.pages = static_cast<godwit_u32>(pages);
        d.user_bits = reinterpret_cast<godwit_u64>(bitmap.data() + first / 64);
        if (::ioctl(fd_, GODWIT_IOCTL_DIRTY_LOG, &d) != 0)
            throw system_error("GODWIT_IOCTL_DIRTY_LOG (fetch)", errno);
    }
}

std::vector<std::uint8_t> GodwitBackend::get_vcpu_extra(unsigned vcpu) {
    godwit_ioctl_vcpu_extra x{};
    x.id = id_;
    x.vcpu = vcpu;
    if (::ioctl(fd_, GODWIT_IOCTL_VCPU_GET_EXTRA, &x) != 0)
        throw system_error("GODWIT_IOCTL_VCPU_GET_EXTRA", errno);
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(&x.extra);
    return {bytes, bytes + sizeof(x.extra)};
}

void GodwitBackend::set_vcpu_extra(unsigned vcpu, const std::vector<std::uint8_t>& blob) {
    godwit_ioctl_vcpu_extra x{};
    if (blob.size() != sizeof(x.extra))
        throw Error(ErrorCode::invalid_input, "vCPU " + std::to_string(vcpu) + ": extra state of " +
                                                  std::to_string(blob.size()) +
                                                  " bytes, this hypervisor takes " +
                                                  std::to_string(sizeof(x.extra)));
    x.id = id_;
    x.vcpu = vcpu;
    std::memcpy(&x.extra, blob.data(), sizeof(x.extra));
    if (::ioctl(fd_, GODWIT_IOCTL_VCPU_SET_EXTRA, &x) != 0)
        throw system_error("GODWIT_IOCTL_VCPU_SET_EXTRA (the hypervisor refused the state)", errno);
}

std::vector<std::uint8_t> GodwitBackend::get_irqchip() {
    godwit_ioctl_irqchip c{};
    c.id = id_;
    if (::ioctl(fd_, GODWIT_IOCTL_IRQCHIP_GET, &c) != 0)
        throw system_error("GODWIT_IOCTL_IRQCHIP_GET", errno);
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(&c.chip);
    return {bytes, bytes + sizeof(c.chip)};
}

void GodwitBackend::set_irqchip(const std::vector<std::uint8_t>& blob) {
    godwit_ioctl_irqchip c{};
    if (blob.size() != sizeof(c.chip))
        throw Error(ErrorCode::invalid_input, "IOAPIC state of " + std::to_string(blob.size()) +
                                                  " bytes, this hypervisor takes " +
                                                  std::to_string(sizeof(c.chip)));
    c.id = id_;
    std::memcpy(&c.chip, blob.data(), sizeof(c.chip));
    if (::ioctl(fd_, GODWIT_IOCTL_IRQCHIP_SET, &c) != 0)
        throw system_error("GODWIT_IOCTL_IRQCHIP_SET (the hypervisor refused the state)", errno);
}

void GodwitBackend::irq(unsigned pin, bool level) {
    godwit_ioctl_irq req{};
    req.id = id_;
    req.pin = pin;
    req.level = level ? 1 : 0;
    if (::ioctl(fd_, GODWIT_IOCTL_PARTITION_IRQ, &req) != 0)
        throw system_error("GODWIT_IOCTL_PARTITION_IRQ", errno);
    wake_vcpus(req.wake_mask);
}

void GodwitBackend::kick(unsigned vcpu) {
    if (vcpu >= vcpus_)
        return;
    std::scoped_lock lock(idle_[vcpu].mutex);
    idle_[vcpu].stop.store(true);
    idle_[vcpu].cv.notify_all();
}

} // namespace godwit::vmm
