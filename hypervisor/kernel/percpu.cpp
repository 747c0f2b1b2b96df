#include "kernel/percpu.hpp"

#include "arch/x86/intrinsics.hpp"
#include "kernel/descriptors.hpp"
#include "kernel/percpu_setup.hpp"

namespace godwit::hv {
namespace {

constexpr u32 msr_gs_base = 0xC0000101;
PerCpu cpus[max_cpus];
CpuDescriptors descriptors[max_cpus];
u32 online_count = 0;

} // namespace

bool this_cpu_ready() {
    return x86::rdmsr(msr_gs_base) != 0;
}

PerCpu& this_cpu() {
    return *reinterpret_cast<PerCpu*>(x86::read_gs_qword0());
}
u32 cpu_count() {
    return __atomic_load_n(&online_count, __ATOMIC_ACQUIRE);
}
PerCpu& cpu(u32 index) {
    return cpus[index];
}

void percpu_init_this_cpu(u32 index, u32 apic_id, u64 stack_top) {
    PerCpu& c = cpus[index];
    c.self = &c;
    c.index = index;
    c.apic_id = apic_id;
    c.stack_top = stack_top;
    c.vmx = nullptr;
    descriptors_init_this_cpu(descriptors[index]);
    x86::wrmsr(msr_gs_base, reinterpret_cast<u64>(&c));
    c.online = true;
    __atomic_fetch_add(&online_count, 1, __ATOMIC_RELEASE);
}

} // namespace godwit::hv
