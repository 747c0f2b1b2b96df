#include "selftest/test_guest.hpp"

#include "arch/x86/intrinsics.hpp"
#include "arch/x86/mtrr_read.hpp"
#include "arch/x86/vmx/vmx_state.hpp"
#include "kernel/console.hpp"

extern "C" void* memcpy(void*, const void*, godwit::hv::usize);

namespace godwit::hv::selftest {

bool TestGuest::create(GuestMode mode, const char* code, const char* code_end, VcpuConfig config,
                       const char** error) {
    ram_ = alloc_frames(guest_ram_bytes / page_size, large_page_size);
    if (ram_.value == 0) {
        *error = "no memory for guest RAM";
        return false;
    }
    if (ept_.init() != ept::Status::ok) {
        *error = "no memory for the EPT";
        return false;
    }
    // The guest's RAM gets the memory type the MTRRs give the host memory behind it.
    u8 type = mtrr_type_of_range(host_mtrrs(), ram_.value, guest_ram_bytes);
    if (type == mtrr_mixed)
        type = mtrr_uc;
    for (u64 gpa = 0; gpa < guest_ram_bytes; gpa += page_size) {
        if (ept_.map(gpa, ram_.value + gpa, ept::PageSize::size_4k, ept::access_rwx, type) !=
            ept::Status::ok) {
            *error = "EPT map failed";
            return false;
        }
    }
    memcpy(ram(guest_code_gpa), code, static_cast<usize>(code_end - code));
    if (mode == GuestMode::long_mode) {
        // PML4 -> PDPT -> PD with 2 MiB pages: guest-linear == guest-physical for 0..1 GiB.
        auto* pml4 = reinterpret_cast<u64*>(ram(guest_pml4_gpa));
        auto* pdpt = reinterpret_cast<u64*>(ram(guest_pml4_gpa + 0x1000));
        auto* pd = reinterpret_cast<u64*>(ram(guest_pml4_gpa + 0x2000));
        pml4[0] = (guest_pml4_gpa + 0x1000) | 0x3;
        pdpt[0] = (guest_pml4_gpa + 0x2000) | 0x3;
        for (u64 i = 0; i < 512; ++i)
            pd[i] = (i << 21) | 0x83;
        auto* gdt = reinterpret_cast<u64*>(ram(guest_gdt_gpa));
        gdt[1] = 0x00AF9A000000FFFFull;
        gdt[2] = 0x00CF92000000FFFFull;
        config.cr3 = guest_pml4_gpa;
        config.gdt_base = guest_gdt_gpa;
    }
    config.mode = mode;
    vpid_ = config.vpid;
    config.rip = guest_code_gpa;
    config.rsp = guest_stack_gpa;
    eptp_ = ept_.eptp(config.pml);
    config.eptp = eptp_;
    if (!vcpu_.create(config, error))
        return false;
    invalidate_ept();
    return true;
}

void TestGuest::invalidate_ept() {
    const vmx::Features& f = vmx_features();
    x86::invept(f.invept_single ? 1 : 2, x86::InveptDescriptor{eptp_, 0});
}

void TestGuest::destroy() {
    // Drop the guest's cached translations: its VPID may be reused by the next guest.
    if (vmx_features().invvpid_single)
        x86::invvpid(1, x86::InvvpidDescriptor{vpid_, 0});
    else if (vmx_features().invvpid_all)
        x86::invvpid(2, x86::InvvpidDescriptor{0, 0});
    vcpu_.destroy();
    ept_.destroy();
    if (ram_.value != 0)
        free_frames(ram_, guest_ram_bytes / page_size);
    ram_ = PhysAddr{};
}

} // namespace godwit::hv::selftest
