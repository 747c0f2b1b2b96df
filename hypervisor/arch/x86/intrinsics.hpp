// Every x86 instruction the hypervisor issues through inline assembly lives here and only
// here, so that the rest of the code is plain C++ and pure logic builds (and is unit
// tested) on the build host. Host builds must not include this header; they feed pure
// functions with values instead (capability MSR values, fake memory, ...).
#pragma once

#if !defined(GODWIT_FREESTANDING)
#error "arch/x86/intrinsics.hpp is for the freestanding hypervisor build only"
#endif

#include "lib/types.hpp"

namespace godwit::hv::x86 {

struct CpuidResult {
    u32 eax, ebx, ecx, edx;
};

inline CpuidResult cpuid(u32 leaf, u32 subleaf = 0) {
    CpuidResult r;
    asm volatile("cpuid"
                 : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
                 : "a"(leaf), "c"(subleaf));
    return r;
}

inline u64 rdmsr(u32 msr) {
    u32 lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (static_cast<u64>(hi) << 32) | lo;
}

inline void wrmsr(u32 msr, u64 value) {
    asm volatile("wrmsr" ::"c"(msr), "a"(static_cast<u32>(value)),
                 "d"(static_cast<u32>(value >> 32))
                 : "memory");
}

// ADOX (Vol. 2A): dst += src + OF, OF = the unsigned carry out. Returns that OF; only on a
// CPU with CPUID.7.0:EBX.ADX (else #UD).
inline bool adox(u64& dst, u64 src, bool carry_in) {
    u8 carry_out = 0;
    asm volatile("test %[in], %[in]\n\t" // OF = 0
                 "jz 1f\n\t"
                 "mov $0x7fffffffffffffff, %%rcx\n\t"
                 "add $1, %%rcx\n" // signed overflow: OF = 1
                 "1:\n\t"
                 "adox %[src], %[dst]\n\t"
                 "seto %[out]"
                 : [dst] "+r"(dst), [out] "=q"(carry_out)
                 : [src] "r"(src), [in] "r"(u64{carry_in})
                 : "rcx", "cc");
    return carry_out != 0;
}

inline u64 rdtsc() {
    u32 lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (static_cast<u64>(hi) << 32) | lo;
}

inline u8 inb(u16 port) {
    u8 v;
    asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline u16 inw(u16 port) {
    u16 v;
    asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline u32 inl(u16 port) {
    u32 v;
    asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline void outb(u16 port, u8 v) {
    asm volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}
inline void outw(u16 port, u16 v) {
    asm volatile("outw %0, %1" ::"a"(v), "Nd"(port));
}
inline void outl(u16 port, u32 v) {
    asm volatile("outl %0, %1" ::"a"(v), "Nd"(port));
}

inline u64 read_cr0() {
    u64 v;
    asm volatile("mov %%cr0, %0" : "=r"(v));
    return v;
}
inline u64 read_cr2() {
    u64 v;
    asm volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}
inline void write_cr2(u64 v) {
    asm volatile("mov %0, %%cr2" : : "r"(v) : "memory");
}

inline u64 read_cr3() {
    u64 v;
    asm volatile("mov %%cr3, %0" : "=r"(v));
    return v;
}
inline u64 read_cr4() {
    u64 v;
    asm volatile("mov %%cr4, %0" : "=r"(v));
    return v;
}
inline void write_cr0(u64 v) {
    asm volatile("mov %0, %%cr0" ::"r"(v) : "memory");
}
inline void write_cr3(u64 v) {
    asm volatile("mov %0, %%cr3" ::"r"(v) : "memory");
}
inline void write_cr4(u64 v) {
    asm volatile("mov %0, %%cr4" ::"r"(v) : "memory");
}

inline u64 read_rflags() {
    u64 v;
    asm volatile("pushfq; popq %0" : "=r"(v));
    return v;
}

inline void xsetbv(u32 index, u64 value) {
    asm volatile("xsetbv" ::"c"(index), "a"(static_cast<u32>(value)),
                 "d"(static_cast<u32>(value >> 32)));
}
// The tail of every *_safe instruction below: the instruction at label 1 sets ok when it
// completes; on a fault the exception table (kernel/exceptions.cpp) resumes at label 2 with
// ok still 0. A macro because asm templates take only string literals.
#define GODWIT_SAFE_TAIL                                                                           \
    "   mov $1, %[ok]\n"                                                                           \
    "2:\n"                                                                                         \
    ".pushsection .godwit_extable, \"a\"\n"                                                        \
    ".balign 8\n"                                                                                  \
    ".quad 1b, 2b\n"                                                                               \
    ".popsection\n"

// RDMSR that reports a #GP (MSR not implemented) instead of faulting the hypervisor: the
// exception table (kernel/exceptions.cpp) resumes after the instruction with ok still 0.
inline bool rdmsr_safe(u32 msr, u64& value) {
    u32 lo = 0, hi = 0, ok = 0;
    asm volatile("1: rdmsr\n" GODWIT_SAFE_TAIL
                 : "+a"(lo), "+d"(hi), [ok] "+r"(ok)
                 : "c"(msr)
                 : "memory");
    value = (u64{hi} << 32) | lo;
    return ok != 0;
}

// WRMSR that reports a #GP (a value or MSR the CPU refuses) instead of faulting the
// hypervisor, through the same exception table.
inline bool wrmsr_safe(u32 msr, u64 value) {
    u32 ok = 0;
    asm volatile("1: wrmsr\n" GODWIT_SAFE_TAIL
                 : [ok] "+r"(ok)
                 : "c"(msr), "a"(static_cast<u32>(value)), "d"(static_cast<u32>(value >> 32))
                 : "memory");
    return ok != 0;
}

inline u64 xgetbv(u32 index) {
    u32 lo, hi;
    asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(index));
    return (static_cast<u64>(hi) << 32) | lo;
}

// ---- x87/SSE/AVX state (Intel SDM Vol. 1, chapter 13; Vol. 2 XSAVE, XRSTOR, FXSAVE) ----
// `area` is 64-byte aligned (16 for FXSAVE); `mask` (EDX:EAX) selects components, ANDed
// with XCR0. Standard (non-compacted) format.
inline void xsave64(void* area, u64 mask) {
    asm volatile("xsave64 (%0)" ::"r"(area), "a"(static_cast<u32>(mask)),
                 "d"(static_cast<u32>(mask >> 32))
                 : "memory");
}
// XRSTOR that reports a #GP (a state the CPU refuses) instead of faulting the hypervisor.
inline bool xrstor64_safe(const void* area, u64 mask) {
    u32 ok = 0;
    asm volatile("1: xrstor64 (%[area])\n" GODWIT_SAFE_TAIL
                 : [ok] "+r"(ok)
                 : [area] "r"(area), "a"(static_cast<u32>(mask)), "d"(static_cast<u32>(mask >> 32))
                 : "memory");
    return ok != 0;
}
inline void fxsave64(void* area) {
    asm volatile("fxsave64 (%0)" ::"r"(area) : "memory");
}
inline bool fxrstor64_safe(const void* area) {
    u32 ok = 0;
    asm volatile("1: fxrstor64 (%[area])\n" GODWIT_SAFE_TAIL
                 : [ok] "+r"(ok)
                 : [area] "r"(area)
                 : "memory");
    return ok != 0;
}

inline void cli() {
    asm volatile("cli" ::: "memory");
}
inline void sti() {
    asm volatile("sti" ::: "memory");
}
inline void hlt() {
    asm volatile("hlt" ::: "memory");
}
inline void pause() {
    asm volatile("pause" ::: "memory");
}
inline void invlpg(const void* va) {
    asm volatile("invlpg (%0)" ::"r"(va) : "memory");
}
inline void wbinvd() {
    asm volatile("wbinvd" ::: "memory");
}

// ---- Descriptor tables and segments (Intel SDM Vol. 3A, chapter 3 and 7) ----
struct [[gnu::packed]] DescriptorTablePointer {
    u16 limit;
    u64 base;
};
static_assert(sizeof(DescriptorTablePointer) == 10);

inline void lgdt(const DescriptorTablePointer& p) {
    asm volatile("lgdt %0" ::"m"(p) : "memory");
}
inline void lidt(const DescriptorTablePointer& p) {
    asm volatile("lidt %0" ::"m"(p) : "memory");
}
inline void ltr(u16 selector) {
    asm volatile("ltr %0" ::"r"(selector) : "memory");
}
inline void sgdt(DescriptorTablePointer& p) {
    asm volatile("sgdt %0" : "=m"(p));
}
inline void sidt(DescriptorTablePointer& p) {
    asm volatile("sidt %0" : "=m"(p));
}
inline u16 read_cs() {
    u16 v;
    asm volatile("mov %%cs, %0" : "=r"(v));
    return v;
}
inline u16 read_ss() {
    u16 v;
    asm volatile("mov %%ss, %0" : "=r"(v));
    return v;
}
inline u16 read_ds() {
    u16 v;
    asm volatile("mov %%ds, %0" : "=r"(v));
    return v;
}
inline u16 read_es() {
    u16 v;
    asm volatile("mov %%es, %0" : "=r"(v));
    return v;
}
inline u16 read_fs() {
    u16 v;
    asm volatile("mov %%fs, %0" : "=r"(v));
    return v;
}
inline u16 read_gs() {
    u16 v;
    asm volatile("mov %%gs, %0" : "=r"(v));
    return v;
}
inline u16 read_tr() {
    u16 v;
    asm volatile("str %0" : "=r"(v));
    return v;
}
// Reloads CS with `selector` (far return) and the data segments with `data`.
inline void reload_segments(u16 code, u16 data) {
    asm volatile("pushq %q0\n\t"
                 "leaq 1f(%%rip), %%rax\n\t"
                 "pushq %%rax\n\t"
                 "lretq\n"
                 "1:\n\t"
                 "mov %w1, %%ds\n\t"
                 "mov %w1, %%es\n\t"
                 "mov %w1, %%ss"
                 :
                 : "r"(static_cast<u64>(code)), "r"(data)
                 : "rax", "memory");
}
// The first quadword at GS base (per-CPU data's self pointer).
inline u64 read_gs_qword0() {
    u64 v;
    asm volatile("mov %%gs:0, %0" : "=r"(v));
    return v;
}

// Ends a Bochs run (magic_break: enabled=1 drops into the debugger, whose rc file quits).
inline void bochs_magic_break() {
    asm volatile("xchg %%bx, %%bx" ::: "memory");
}

// ---- VMX (Intel SDM Vol. 3C, chapter 31 "VMX instruction reference") ----
// Each returns true on success (neither CF nor ZF set).
inline bool vmxon(u64 region_pa) {
    u8 ok;
    asm volatile("vmxon %1; seta %0" : "=qm"(ok) : "m"(region_pa) : "cc", "memory");
    return ok;
}
inline bool vmxoff() {
    u8 ok;
    asm volatile("vmxoff; seta %0" : "=qm"(ok) : : "cc", "memory");
    return ok;
}
inline bool vmclear(u64 vmcs_pa) {
    u8 ok;
    asm volatile("vmclear %1; seta %0" : "=qm"(ok) : "m"(vmcs_pa) : "cc", "memory");
    return ok;
}
inline bool vmptrld(u64 vmcs_pa) {
    u8 ok;
    asm volatile("vmptrld %1; seta %0" : "=qm"(ok) : "m"(vmcs_pa) : "cc", "memory");
    return ok;
}
inline bool vmread(u64 field, u64& value) {
    u8 ok;
    asm volatile("vmread %2, %1; seta %0" : "=qm"(ok), "=rm"(value) : "r"(field) : "cc");
    return ok;
}
inline bool vmwrite(u64 field, u64 value) {
    u8 ok;
    asm volatile("vmwrite %2, %1; seta %0" : "=qm"(ok) : "r"(field), "rm"(value) : "cc");
    return ok;
}

struct InveptDescriptor {
    u64 eptp;
    u64 reserved;
};
struct InvvpidDescriptor {
    u64 vpid; // bits 15:0
    u64 linear_address;
};
static_assert(sizeof(InveptDescriptor) == 16);
static_assert(sizeof(InvvpidDescriptor) == 16);

inline bool invept(u64 type, const InveptDescriptor& d) {
    u8 ok;
    asm volatile("invept %1, %2; seta %0" : "=qm"(ok) : "m"(d), "r"(type) : "cc", "memory");
    return ok;
}
inline bool invvpid(u64 type, const InvvpidDescriptor& d) {
    u8 ok;
    asm volatile("invvpid %1, %2; seta %0" : "=qm"(ok) : "m"(d), "r"(type) : "cc", "memory");
    return ok;
}

} // namespace godwit::hv::x86
