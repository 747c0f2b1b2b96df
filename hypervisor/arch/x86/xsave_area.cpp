#include "arch/x86/xsave_area.hpp"

namespace godwit::hv::x86 {
namespace {

template <typename T>
T load(const u8* p) {
    T v;
    __builtin_memcpy(&v, p, sizeof(T));
    return v;
}
template <typename T>
void store(u8* p, T v) {
    __builtin_memcpy(p, &v, sizeof(T));
}

bool whole_or_none(u64 value, u64 group) {
    return (value & group) == 0 || (value & group) == group;
}

} // namespace

XsaveLayout make_xsave_layout(bool xsave, u64 host_xcr0_supported, const u32* offsets,
                              const u32* sizes, u32 mxcsr_mask) {
    XsaveLayout l{};
    l.xsave = xsave;
    l.mxcsr_mask = mxcsr_mask != 0 ? mxcsr_mask : mxcsr_mask_default;
    l.area_bytes = xsave_min_bytes;
    if (!xsave) {
        l.features = xfeature_x87 | xfeature_sse; // what FXSAVE holds
        return l;
    }
    u64 features = host_xcr0_supported & guest_xfeature_policy;
    // A component that does not fit the ABI's area is not offered (none does today).
    for (u32 i = 2; i < 19; ++i) {
        if ((features & (1ull << i)) == 0)
            continue;
        u64 end = u64{offsets[i]} + sizes[i];
        if (offsets[i] < xsave_min_bytes || sizes[i] == 0 || end > GODWIT_FPU_AREA_BYTES) {
            features &= ~(1ull << i);
            continue;
        }
        l.offset[i] = offsets[i];
        l.size[i] = sizes[i];
        if (end > l.area_bytes)
            l.area_bytes = static_cast<u32>(end);
    }
    // Groups that lost a member lose all of it (XCR0 rules), and AVX-512 needs AVX.
    if (!whole_or_none(features, xfeature_avx512) || (features & xfeature_avx) == 0)
        features &= ~xfeature_avx512;
    if ((features & xfeature_sse) == 0)
        features &= ~(xfeature_avx | xfeature_avx512);
    l.features = features | xfeature_x87;
    return l;
}

bool xcr0_valid(u64 value, u64 allowed) {
    if ((value & xfeature_x87) == 0 || (value & ~allowed) != 0)
        return false;
    if ((value & xfeature_avx) != 0 && (value & xfeature_sse) == 0)
        return false;
    if (!whole_or_none(value, xfeature_avx512))
        return false;
    if ((value & xfeature_avx512) != 0 && (value & xfeature_avx) == 0)
        return false;
    return whole_or_none(value, xfeature_mpx) && whole_or_none(value, xfeature_amx);
}

void reset_xsave_area(u8* area) {
    for (u32 i = 0; i < GODWIT_FPU_AREA_BYTES; ++i)
        area[i] = 0;
    store<u16>(area + __builtin_offsetof(FxsaveImage, fcw), fcw_reset);
    store<u32>(area + __builtin_offsetof(FxsaveImage, mxcsr), mxcsr_reset);
}

u64 check_fpu_state(const godwit_hc_vcpu_fpu& in, const XsaveLayout& layout) {
    if (in.format != GODWIT_FPU_FORMAT || in.area_bytes < xsave_min_bytes ||
        in.area_bytes > GODWIT_FPU_AREA_BYTES)
        return GODWIT_HC_BAD_ARGUMENT;
    for (u64 r : in.reserved)
        if (r != 0)
            return GODWIT_HC_BAD_ARGUMENT;
    // Without XSAVE there is no XCR0: the guest's stays at its reset value.
    if (layout.xsave ? !xcr0_valid(in.xcr0, layout.features) : in.xcr0 != xfeature_x87)
        return GODWIT_HC_BAD_ARGUMENT;
    XsaveHeader h = load<XsaveHeader>(in.xsave + xsave_header_offset);
    if ((h.xstate_bv & ~layout.features) != 0 || h.xcomp_bv != 0)
        return GODWIT_HC_BAD_ARGUMENT;
    for (u64 r : h.reserved)
        if (r != 0)
            return GODWIT_HC_BAD_ARGUMENT;
    for (u32 i = 2; i < 19; ++i)
        if ((h.xstate_bv & (1ull << i)) != 0 && layout.offset[i] + layout.size[i] > in.area_bytes)
            return GODWIT_HC_BAD_ARGUMENT;
    u32 mxcsr = load<u32>(in.xsave + __builtin_offsetof(FxsaveImage, mxcsr));
    if ((mxcsr & ~layout.mxcsr_mask) != 0)
        return GODWIT_HC_BAD_ARGUMENT;
    return GODWIT_HC_OK;
}

void apply_init_for_fxrstor(u8* area) {
    u64 bv = load<u64>(area + xsave_header_offset);
    if ((bv & xfeature_x87) == 0) {
        u32 mxcsr = load<u32>(area + __builtin_offsetof(FxsaveImage, mxcsr));
        for (u32 i = 0; i < __builtin_offsetof(FxsaveImage, xmm); ++i)
            area[i] = 0;
        store<u16>(area + __builtin_offsetof(FxsaveImage, fcw), fcw_reset);
        store<u32>(area + __builtin_offsetof(FxsaveImage, mxcsr), mxcsr);
    }
    if ((bv & xfeature_sse) == 0)
        for (u32 i = __builtin_offsetof(FxsaveImage, xmm); i < 160 + 256; ++i)
            area[i] = 0;
    store<u64>(area + xsave_header_offset, xfeature_x87 | xfeature_sse);
}

} // namespace godwit::hv::x86
