// The root partition: Debian's Linux kernel, launched by the hypervisor through the 64-bit
// boot protocol in VMX non-root mode on the bootstrap processor, with every other CPU parked
// in wait-for-SIPI for Linux to start (docs/hypervisor-root.md).
#pragma once

#include "arch/x86/vmx/vmx_vcpu.hpp"
#include "platform/multiboot2.hpp"
#include "root/linux_boot.hpp"
#include "root/root_memory.hpp"

namespace godwit::hv {

// What the hypervisor knows about the running root partition (hypercalls report it).
struct RootPartition {
    linux_boot::E820Entry e820[linux_boot::e820_max_entries];
    u32 e820_count;
    u64 ram_total;        // RAM in the firmware map
    u64 root_ram;         // RAM the root's e820 gives it
    u64 hypervisor_bytes; // image + pool
    u64 eptp;
    u64 msr_bitmap;
    u64 code_start;       // 64-bit entry
    u64 refused_accesses; // EPT violations: root touched memory it does not own
};

RootPartition& root_partition();

// Boots boot module 0 (a bzImage; its module command line is the kernel's) with module 1 as
// the initramfs. `hidden` is the hypervisor's own memory (left out of the root's EPT and
// marked reserved in its e820). Does not return when Linux starts; otherwise returns why not.
const char* launch_root_partition(const Multiboot2Info& mb2, u64 rsdp, const root::Range* hidden,
                                  u32 hidden_count);

// The exit loop of a root vCPU on this CPU (root_exits.cpp). Never returns: a root partition
// that breaks (triple fault, bad state) ends the run with the reason on the console.
[[noreturn]] void run_root_vcpu(VmxVcpu& vcpu);

} // namespace godwit::hv
