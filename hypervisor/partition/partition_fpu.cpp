// The x87/SSE/AVX state of guest vCPUs. Neither VM entry nor VM exit switches it (Intel SDM
// Vol. 3C 27.3 and 28.5 load only the VMCS's state; XCR0 is not in the VMCS), so the
// hypervisor does, around every GODWIT_HC_VCPU_RUN that enters the guest: the root's state
// is saved and the guest's loaded (XSAVE/XRSTOR, Vol. 1 13.7-13.8, or FXSAVE/FXRSTOR on a
// CPU without XSAVE), and the reverse before the root resumes. The guest's XCR0 is loaded
// only while the guest runs; its XSETBV exits (Vol. 3C 26.1.2: XSETBV always exits) are
// checked here. The hypervisor itself never touches these registers (-mgeneral-regs-only).
#include "arch/x86/cpuid_policy.hpp"
#include "arch/x86/intrinsics.hpp"
#include "arch/x86/vmx/vmcs_fields.hpp"
#include "arch/x86/xsave_area.hpp"
#include "kernel/console.hpp"
#include "memory/frame_allocator.hpp"
#include "partition/partition.hpp"
#include "partition/partitions.hpp"

namespace godwit::hv::partitions {
namespace {

using vmx::VmcsField;

x86::XsaveLayout layout;
u32 root_area_pages = 1;
bool probed = false;

constexpr u64 cr4_osxsave = 1ull << 18;

x86::XsaveHeader& header_of(u8* area) {
    return *reinterpret_cast<x86::XsaveHeader*>(area + x86::xsave_header_offset);
}

// Loads the guest's area; one the CPU refuses (it was checked, so never expected) is
// replaced by the reset state rather than faulting the hypervisor.
void load_guest_area(Vcpu& v) {
    bool ok = layout.xsave ? x86::xrstor64_safe(v.guest_fpu, layout.features)
                           : x86::fxrstor64_safe(v.guest_fpu);
    if (ok)
        return;
    log(LogLevel::error, "vCPU FPU state refused by the CPU: reset");
    x86::reset_xsave_area(v.guest_fpu);
    if (layout.xsave)
        x86::xrstor64_safe(v.guest_fpu, layout.features);
    else
        x86::fxrstor64_safe(v.guest_fpu);
}

} // namespace

void fpu_probe() {
    if (probed)
        return;
    bool xsave = ((x86::cpuid(1).ecx >> 26) & 1) != 0;
    u32 offsets[19] = {}, sizes[19] = {};
    u64 supported = 0;
    u32 root_bytes = 512;
    if (xsave) {
        x86::CpuidResult d = x86::cpuid(0xD, 0);
        supported = (u64{d.edx} << 32) | d.eax;
        root_bytes = d.ecx; // every component XCR0 may enable (Vol. 1 13.2)
        for (u32 i = 2; i < 19; ++i) {
            if ((supported & (1ull << i)) == 0)
                continue;
            x86::CpuidResult c = x86::cpuid(0xD, i);
            sizes[i] = c.eax;
            offsets[i] = c.ebx;
        }
    }
    // MXCSR_MASK from FXSAVE (Vol. 1 11.6.6) bounds the MXCSR values a restore may load.
    u32 mxcsr_mask = 0;
    PhysAddr scratch = alloc_frame();
    if (scratch.value != 0) {
        u8* area = static_cast<u8*>(phys_to_virt(scratch));
        x86::fxsave64(area);
        __builtin_memcpy(&mxcsr_mask, area + __builtin_offsetof(x86::FxsaveImage, mxcsr_mask),
                         sizeof(mxcsr_mask));
        free_frame(scratch);
    }
    layout = x86::make_xsave_layout(xsave, supported, offsets, sizes, mxcsr_mask);
    root_area_pages = static_cast<u32>((root_bytes + page_size - 1) / page_size);
    probed = true;
    log(LogLevel::info,
        "partitions: guest FPU state by %s, components 0x%lx (%u bytes), MXCSR mask 0x%x",
        xsave ? "XSAVE" : "FXSAVE", layout.features, layout.area_bytes, layout.mxcsr_mask);
}

bool fpu_create(Vcpu& v) {
    PhysAddr guest = alloc_frame();
    PhysAddr root = alloc_frames(root_area_pages);
    if (guest.value == 0 || root.value == 0) {
        if (guest.value != 0)
            free_frame(guest);
        if (root.value != 0)
            free_frames(root, root_area_pages);
        return false;
    }
    v.guest_fpu = static_cast<u8*>(phys_to_virt(guest));
    v.root_fpu = static_cast<u8*>(phys_to_virt(root));
    x86::reset_xsave_area(v.guest_fpu);
    v.xcr0 = x86::xfeature_x87; // Vol. 1 13.3: XCR0 is 1 after reset
    return true;
}

void fpu_destroy(Vcpu& v) {
    if (v.guest_fpu != nullptr)
        free_frame(virt_to_phys(v.guest_fpu));
    if (v.root_fpu != nullptr)
        free_frames(virt_to_phys(v.root_fpu), root_area_pages);
    v.guest_fpu = nullptr;
    v.root_fpu = nullptr;
}

GuestFpuLoaded::GuestFpuLoaded(Vcpu& v) : v_(v) {
    if (!layout.xsave) {
        x86::fxsave64(v.root_fpu);
        load_guest_area(v);
        return;
    }
    // Save and load under an XCR0 that holds the root's components and the guest's (XSAVE
    // saves only components enabled in XCR0), then enter with the guest's XCR0.
    root_xcr0_ = x86::xgetbv(0);
    switch_xcr0_ = root_xcr0_ | layout.features;
    if (switch_xcr0_ != root_xcr0_)
        x86::xsetbv(0, switch_xcr0_);
    x86::xsave64(v.root_fpu, ~0ull);
    load_guest_area(v);
    if (v.xcr0 != switch_xcr0_)
        x86::xsetbv(0, v.xcr0);
}

GuestFpuLoaded::~GuestFpuLoaded() {
    if (!layout.xsave) {
        x86::fxsave64(v_.guest_fpu);
        header_of(v_.guest_fpu).xstate_bv = x86::xfeature_x87 | x86::xfeature_sse;
        x86::fxrstor64_safe(v_.root_fpu);
        return;
    }
    if (v_.xcr0 != switch_xcr0_)
        x86::xsetbv(0, switch_xcr0_);
    x86::xsave64(v_.guest_fpu, layout.features);
    x86::xrstor64_safe(v_.root_fpu, ~0ull);
    if (switch_xcr0_ != root_xcr0_)
        x86::xsetbv(0, root_xcr0_);
}

void emulate_xsetbv(Vcpu& v, u32 instruction_length) {
    VmxVcpu& g = v.vmx;
    if (!layout.xsave || (g.guest_visible_cr4() & cr4_osxsave) == 0) {
        g.inject_ud(); // Vol. 2B XSETBV: #UD when CR4.OSXSAVE = 0
        return;
    }
    u32 index = static_cast<u32>(g.regs.rcx);
    u64 value = (g.regs.rdx << 32) | (g.regs.rax & 0xFFFFFFFF);
    u8 cpl = static_cast<u8>((g.read(VmcsField::guest_ss_access_rights) >> 5) & 3);
    if (cpl != 0 || index != 0 || !x86::xcr0_valid(value, layout.features)) {
        g.inject_gp();
        return;
    }
    v.xcr0 = value;
    x86::xsetbv(0, value); // the guest's XCR0 is the live one while its run loop goes on
    g.skip_instruction(instruction_length);
}

void fpu_patch_cpuid(u32 leaf, u32 subleaf, GuestRegisters& r) {
    CpuidValues c{static_cast<u32>(r.rax), static_cast<u32>(r.rbx), static_cast<u32>(r.rcx),
                  static_cast<u32>(r.rdx)};
    c = restrict_xsave_features(leaf, subleaf, c, layout.xsave ? layout.features : 0,
                                layout.area_bytes);
    r.rax = c.eax;
    r.rbx = c.ebx;
    r.rcx = c.ecx;
    r.rdx = c.edx;
}

u64 get_fpu(u32 id, u32 index, godwit_hc_vcpu_fpu& out) {
    ClaimedVcpu call(id, index, true);
    if (call.status() != GODWIT_HC_OK)
        return call.status();
    Vcpu& v = call.vcpu();
    out = godwit_hc_vcpu_fpu{};
    out.format = GODWIT_FPU_FORMAT;
    out.area_bytes = layout.area_bytes;
    out.xcr0 = v.xcr0;
    out.features = layout.features;
    __builtin_memcpy(out.xsave, v.guest_fpu, layout.area_bytes);
    return GODWIT_HC_OK;
}

u64 set_fpu(u32 id, u32 index, const godwit_hc_vcpu_fpu& in) {
    if (u64 bad = x86::check_fpu_state(in, layout))
        return bad;
    ClaimedVcpu call(id, index, true); // the registers come first (VCPU_SET_STATE)
    if (call.status() != GODWIT_HC_OK)
        return call.status();
    Vcpu& v = call.vcpu();
    x86::reset_xsave_area(v.guest_fpu);
    u32 bytes = in.area_bytes < layout.area_bytes ? in.area_bytes : layout.area_bytes;
    __builtin_memcpy(v.guest_fpu, in.xsave, bytes);
    if (!layout.xsave)
        x86::apply_init_for_fxrstor(v.guest_fpu);
    v.xcr0 = in.xcr0;
    return GODWIT_HC_OK;
}

} // namespace godwit::hv::partitions
