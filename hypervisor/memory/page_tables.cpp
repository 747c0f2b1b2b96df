// Hypervisor page tables. The boot code identity-maps 0-4 GiB with 2 MiB pages (MMIO such
// as the local APIC and I/O APIC lives there, and its memory type comes from the MTRRs,
// which mark it UC). RAM above 4 GiB is added here, so that phys == virt holds for all RAM.
#include "arch/x86/intrinsics.hpp"
#include "kernel/console.hpp"
#include "memory/frame_allocator.hpp"
#include "memory/memory_init.hpp"

namespace godwit::hv {

void map_all_ram(const Multiboot2Info& info) {
    u64 top = 0;
    for (u32 i = 0; i < info.region_count; ++i) {
        u64 end = info.regions[i].addr + info.regions[i].length;
        if (info.regions[i].type == 1 && end > top)
            top = end;
    }
    constexpr u64 boot_mapped = 4ull << 30;
    if (top <= boot_mapped)
        return;
    constexpr u64 present_writable = 0x3, large = 0x80;
    auto* pml4 = static_cast<u64*>(phys_to_virt(PhysAddr{x86::read_cr3() & ~0xFFFull}));
    u64 mapped = boot_mapped;
    for (u64 gib = boot_mapped >> 30; (gib << 30) < top; ++gib) {
        u64 pml4_index = gib / 512;
        if ((pml4[pml4_index] & 1) == 0) {
            PhysAddr pdpt = alloc_frame();
            if (pdpt.value == 0)
                break;
            pml4[pml4_index] = pdpt.value | present_writable;
        }
        auto* pdpt = static_cast<u64*>(phys_to_virt(PhysAddr{pml4[pml4_index] & ~0xFFFull}));
        PhysAddr pd_frame = alloc_frame();
        if (pd_frame.value == 0)
            break;
        auto* pd = static_cast<u64*>(phys_to_virt(pd_frame));
        for (u64 i = 0; i < 512; ++i)
            pd[i] = ((gib << 30) + (i << 21)) | present_writable | large;
        pdpt[gib % 512] = pd_frame.value | present_writable;
        mapped = (gib + 1) << 30;
    }
    x86::write_cr3(x86::read_cr3()); // flush
    log(LogLevel::info, "memory: identity map extended to %lu GiB", mapped >> 30);
}

} // namespace godwit::hv
