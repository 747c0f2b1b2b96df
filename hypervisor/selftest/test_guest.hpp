// A small guest for the self-tests: 2 MiB of RAM at guest-physical 0, mapped with 4 KiB
// EPT pages, a program at 0x1000, and (long mode) identity page tables for its first GiB.
#pragma once

#include "arch/x86/vmx/vmx_vcpu.hpp"
#include "ept/ept_table.hpp"
#include "memory/frame_allocator.hpp"
#include "memory/pool_table_memory.hpp"

namespace godwit::hv::selftest {

inline constexpr u64 guest_ram_bytes = 2ull << 20;
inline constexpr u64 guest_code_gpa = 0x1000;
inline constexpr u64 guest_stack_gpa = 0x9000;
inline constexpr u64 guest_pml4_gpa = 0x10000;
inline constexpr u64 guest_gdt_gpa = 0x13000;
inline constexpr u64 guest_data_gpa = 0x20000;
inline constexpr u64 guest_done = 0x600D;

class TestGuest {
  public:
    TestGuest() : ept_(tables_) {}
    // Builds RAM, EPT and the program; then the vCPU (on the calling CPU).
    bool create(GuestMode mode, const char* code, const char* code_end, VcpuConfig config,
                const char** error);
    void destroy();
    u8* ram(u64 gpa) { return static_cast<u8*>(phys_to_virt(ram_)) + gpa; }
    ept::EptTable& ept() { return ept_; }
    VmxVcpu& vcpu() { return vcpu_; }
    void invalidate_ept(); // after changing EPT entries

  private:
    PoolTableMemory tables_;
    ept::EptTable ept_;
    VmxVcpu vcpu_;
    PhysAddr ram_{};
    u64 eptp_ = 0;
    u16 vpid_ = 1;
};

} // namespace godwit::hv::selftest
