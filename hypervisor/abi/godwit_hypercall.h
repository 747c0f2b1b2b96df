/*
 * Godwit hypercall ABI — shared by the hypervisor, the root driver (Linux kernel module,
 * C) and root userspace (godwitd). Plain C layout, fixed-width fields, no padding holes;
 * every struct's size and offsets are asserted below. Documented in docs/hypercall-abi.md.
 *
 * Discovery: CPUID leaf 0x40000000 returns EAX = highest hypervisor leaf and
 * EBX:ECX:EDX = "GodwitGodwit" when running on Godwit. Leaf 0x40000001 EAX = ABI version
 * (major << 16 | minor). Only then may a caller execute VMCALL.
 *
 * Calling convention (VMCALL from CPL 0 of the root partition; any other caller gets
 * GODWIT_HC_DENIED):
 *   RAX = call number, RDI = arg0, RSI = arg1, RDX = arg2
 *   on return RAX = status (GODWIT_HC_OK or a GODWIT_HC_* error), RDX = call-specific value.
 * Buffers are passed as guest-physical address + length. The hypervisor checks that the
 * whole buffer lies in memory the caller owns (never hypervisor memory), that lengths are
 * within the call's limits, and that reserved fields are zero.
 */
#ifndef GODWIT_HYPERCALL_H
#define GODWIT_HYPERCALL_H

#ifdef __cplusplus
#include <cstdint>
#define GODWIT_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#define GODWIT_OFFSETOF(type, field) __builtin_offsetof(type, field)
#elif defined(__KERNEL__)
#include <linux/types.h>
#define GODWIT_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define GODWIT_OFFSETOF(type, field) __builtin_offsetof(type, field)
#else
#include <stdint.h>
#define GODWIT_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define GODWIT_OFFSETOF(type, field) __builtin_offsetof(type, field)
#endif

#if defined(__KERNEL__) && !defined(__cplusplus)
typedef __u8 godwit_u8;
typedef __u16 godwit_u16;
typedef __u32 godwit_u32;
typedef __u64 godwit_u64;
typedef __s64 godwit_s64;
#else
typedef uint8_t godwit_u8;
typedef uint16_t godwit_u16;
typedef uint32_t godwit_u32;
typedef uint64_t godwit_u64;
typedef int64_t godwit_s64;
#endif

#define GODWIT_HC_ABI_MAJOR 1u
#define GODWIT_HC_ABI_MINOR 5u
#define GODWIT_HC_ABI_VERSION ((GODWIT_HC_ABI_MAJOR << 16) | GODWIT_HC_ABI_MINOR)

#define GODWIT_CPUID_LEAF_SIGNATURE 0x40000000u
#define GODWIT_CPUID_LEAF_ABI 0x40000001u
/* "GodwitGodwit" as EBX, ECX, EDX (little-endian ASCII). */
#define GODWIT_CPUID_SIGNATURE_EBX 0x77646f47u /* "Godw" */
#define GODWIT_CPUID_SIGNATURE_ECX 0x6f477469u /* "itGo" */
#define GODWIT_CPUID_SIGNATURE_EDX 0x74697764u /* "dwit" */

/* Call numbers. New calls get new numbers; numbers are never reused. */
enum godwit_hc_call {
    GODWIT_HC_VERSION = 1,      /* arg0 = gpa of struct godwit_hc_version, arg1 = its size */
    GODWIT_HC_CPU_LIST = 2,     /* arg0 = gpa of struct godwit_hc_cpu[], arg1 = buffer bytes;
                                   RDX = CPUs present (buffer may be smaller: truncated) */
    GODWIT_HC_MEMORY_STATS = 3, /* arg0 = gpa of struct godwit_hc_memory_stats, arg1 = size */
    GODWIT_HC_CONSOLE_READ = 4, /* arg0 = gpa of buffer, arg1 = buffer bytes (<= 64 KiB),
                                   arg2 = read position (console bytes since boot); the buffer
                                   receives struct godwit_hc_console_chunk then the text;
                                   RDX = text bytes copied */
    /* 1.1: guest partitions (docs/hypercall-abi.md, "Guest partitions"). */
    GODWIT_HC_PARTITION_CREATE = 5,  /* arg0 = guest RAM bytes (4 KiB multiple, <= 4 GiB),
                                        arg1 = vCPUs (1..GODWIT_MAX_VCPUS); RDX = id */
    GODWIT_HC_PARTITION_DESTROY = 6, /* arg0 = partition id */
    GODWIT_HC_PARTITION_MAP = 7,     /* arg0 = partition id, arg1 = gpa of
                                        struct godwit_hc_map_frames, arg2 = its bytes */
    GODWIT_HC_VCPU_SET_STATE = 8,    /* arg0 = id | vcpu << 32, arg1 = gpa of
                                        struct godwit_hc_vcpu_state, arg2 = its bytes */
    GODWIT_HC_VCPU_RUN = 9,          /* arg0 = id | vcpu << 32, arg1 = gpa of
                                        struct godwit_hc_vcpu_run, arg2 = its bytes */
    GODWIT_HC_VCPU_GET_STATE = 10,   /* arg0 = id | vcpu << 32, arg1 = gpa of
                                        struct godwit_hc_vcpu_state, arg2 = its bytes */
    /* 1.2: interrupts from the VMM's devices. */
    GODWIT_HC_PARTITION_IRQ = 11, /* arg0 = partition id, arg1 = IOAPIC pin (< 24),
                                     arg2 = line level (0 or 1); RDX = vCPUs to wake
                                     (bit n = vCPU n, as godwit_hc_vcpu_run.wake_mask) */
    /* 1.3: state for save/restore and migration. */
    GODWIT_HC_DIRTY_LOG = 12,      /* arg0 = partition id, arg1 = enum godwit_dirty_op,
                                      arg2 = gpa of struct godwit_hc_dirty_fetch (FETCH) */
    GODWIT_HC_VCPU_GET_EXTRA = 13, /* arg0 = id | vcpu << 32, arg1 = gpa of
                                      struct godwit_hc_vcpu_extra, arg2 = its bytes */
    GODWIT_HC_VCPU_SET_EXTRA = 14, /* as 13; validated before anything changes */
    GODWIT_HC_IRQCHIP_GET = 15,    /* arg0 = id, arg1 = gpa of struct godwit_hc_irqchip,
                                      arg2 = its bytes */
    GODWIT_HC_IRQCHIP_SET = 16,    /* as 15 */
    /* 1.4: the guest's FPU/SSE/AVX state. */
    GODWIT_HC_VCPU_GET_FPU = 17, /* arg0 = id | vcpu << 32, arg1 = gpa of
                                    struct godwit_hc_vcpu_fpu, arg2 = its bytes */
    GODWIT_HC_VCPU_SET_FPU = 18, /* as 17; validated before anything changes */
};

/* Status codes (RAX on return). */
enum godwit_hc_status {
    GODWIT_HC_OK = 0,
    GODWIT_HC_UNKNOWN_CALL = 1, /* no such call number */
    GODWIT_HC_BAD_ADDRESS = 2,  /* buffer not entirely in the caller's own memory */
    GODWIT_HC_BAD_LENGTH = 3,   /* size too small for the struct, or above the limit */
    GODWIT_HC_BAD_ARGUMENT = 4, /* reserved field non-zero, value out of range */
    GODWIT_HC_DENIED = 5,       /* caller may not make this call (not root, CPL != 0) */
    GODWIT_HC_NO_MEMORY = 6,    /* hypervisor could not allocate */
    GODWIT_HC_BUSY = 7,         /* try again */
};

#define GODWIT_HC_CONSOLE_READ_MAX (64u * 1024u)

/* VMX features the hypervisor found (godwit_hc_version.vmx_features). */
#define GODWIT_VMX_EPT (1ull << 0)
#define GODWIT_VMX_VPID (1ull << 1)
#define GODWIT_VMX_UNRESTRICTED_GUEST (1ull << 2)
#define GODWIT_VMX_EPT_AD (1ull << 3)
#define GODWIT_VMX_PML (1ull << 4)
#define GODWIT_VMX_PREEMPTION_TIMER (1ull << 5)
#define GODWIT_VMX_EPT_1G (1ull << 6)
#define GODWIT_VMX_EPT_2M (1ull << 7)
#define GODWIT_VMX_X2APIC (1ull << 8)

struct godwit_hc_version {
    godwit_u32 abi_version;  /* GODWIT_HC_ABI_VERSION of the hypervisor */
    godwit_u32 cpu_count;    /* CPUs running the hypervisor */
    godwit_u64 vmx_features; /* GODWIT_VMX_* bits */
    godwit_u64 vmx_basic;    /* IA32_VMX_BASIC as read at boot */
    char build[48];          /* NUL-terminated "0.1.0+gCOMMIT" */
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_hc_version) == 72, "godwit_hc_version size");
GODWIT_STATIC_ASSERT(GODWIT_OFFSETOF(struct godwit_hc_version, vmx_features) == 8, "offset");
GODWIT_STATIC_ASSERT(GODWIT_OFFSETOF(struct godwit_hc_version, build) == 24, "offset");

struct godwit_hc_cpu {
    godwit_u32 index; /* hypervisor CPU index, 0 = bootstrap processor */
    godwit_u32 apic_id;
    godwit_u32 flags; /* bit 0: online, bit 1: VMX on, bit 2: runs root vCPU */
    godwit_u32 reserved;
    godwit_u64 exits; /* VM exits handled on this CPU since boot */
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_hc_cpu) == 24, "godwit_hc_cpu size");

struct godwit_hc_memory_stats {
    godwit_u64 total_bytes;           /* RAM the hypervisor found in the firmware map */
    godwit_u64 hypervisor_bytes;      /* reserved for the hypervisor (image, tables, heap) */
    godwit_u64 hypervisor_free_bytes; /* of which still free */
    godwit_u64 root_bytes;            /* RAM given to the root partition */
    godwit_u64 guest_bytes;           /* RAM currently assigned to guest partitions */
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_hc_memory_stats) == 40, "memory stats size");

/* Header of a GODWIT_HC_CONSOLE_READ buffer. The hypervisor keeps the most recent console
 * output in a ring; when `position` is older than the ring holds, copying starts at the
 * oldest byte still held and `start` says where (start > requested = bytes were lost). */
struct godwit_hc_console_chunk {
    godwit_u64 start;      /* position of the first text byte in this chunk */
    godwit_u64 end_of_log; /* position one past the newest byte written so far */
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_hc_console_chunk) == 16, "console chunk size");

#define GODWIT_MAX_PARTITIONS 16u
#define GODWIT_MAX_VCPUS 8u
#define GODWIT_MAX_MAP_FRAMES 512u
#define GODWIT_IOAPIC_PINS 24u

/* GODWIT_HC_PARTITION_MAP: maps `count` root pages (4 KiB-aligned root-physical addresses,
 * which must be root RAM) at guest_gpa, guest_gpa + 4 KiB, ... */
struct godwit_hc_map_frames {
    godwit_u64 guest_gpa;
    godwit_u32 count; /* 1..GODWIT_MAX_MAP_FRAMES */
    godwit_u32 reserved;
    godwit_u64 frames[]; /* count entries */
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_hc_map_frames) == 16, "map frames header size");

struct godwit_hc_segment {
    godwit_u64 base;
    godwit_u32 limit;
    godwit_u16 selector;
    godwit_u16 access_rights; /* VMX access-rights bits 15:0; VMX's "unusable" (bit 16)
                                 travels as GODWIT_SEG_UNUSABLE in reserved bit 8 */
};
#define GODWIT_SEG_UNUSABLE 0x100u
GODWIT_STATIC_ASSERT(sizeof(struct godwit_hc_segment) == 16, "segment size");

enum godwit_segment_index {
    GODWIT_SEG_ES,
    GODWIT_SEG_CS,
    GODWIT_SEG_SS,
    GODWIT_SEG_DS,
    GODWIT_SEG_FS,
    GODWIT_SEG_GS,
    GODWIT_SEG_LDTR,
    GODWIT_SEG_TR,
    GODWIT_SEG_COUNT
};

/* A vCPU's architectural state: general registers in the VM-exit numbering (RAX, RCX, RDX,
 * RBX, RSP, RBP, RSI, RDI, R8-R15), then RIP, RFLAGS, control registers, EFER. */
struct godwit_hc_vcpu_state {
    godwit_u64 gpr[16];
    godwit_u64 rip, rflags, cr0, cr3, cr4, efer;
    struct godwit_hc_segment segments[GODWIT_SEG_COUNT];
    godwit_u64 gdtr_base, idtr_base;
    godwit_u32 gdtr_limit, idtr_limit;
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_hc_vcpu_state) == 328, "vcpu state size");
GODWIT_STATIC_ASSERT(GODWIT_OFFSETOF(struct godwit_hc_vcpu_state, segments) == 176, "offset");

/* Why GODWIT_HC_VCPU_RUN returned. */
enum godwit_exit_reason {
    GODWIT_EXIT_IO = 1,          /* port I/O: port, size, direction, value */
    GODWIT_EXIT_HLT = 2,         /* the vCPU is idle (HLT with nothing to deliver, or an AP
                                    waiting for its SIPI): run it again at wake_tsc (0 =
                                    only when woken through wake_mask/RDX) */
    GODWIT_EXIT_MEMORY = 3,      /* access outside the guest's RAM the hypervisor could not
                                    decode (gpa, qualification): the VM cannot continue */
    GODWIT_EXIT_SHUTDOWN = 4,    /* triple fault or bad state: the vCPU cannot continue */
    GODWIT_EXIT_INTERRUPTED = 5, /* a root interrupt arrived, or other vCPUs must be woken
                                    (wake_mask): run again when ready */
    GODWIT_EXIT_MMIO = 6,        /* 1.2: a decoded MMIO access outside RAM: gpa, size,
                                    direction, value (writes are done; a read completes on
                                    the next run with GODWIT_RUN_COMPLETE_READ) */
};

/* flags: `read_value` completes the pending IN or MMIO read. */
#define GODWIT_RUN_COMPLETE_READ 1u
/* 1.3 flags: complete the pending read (if any) and return GODWIT_EXIT_INTERRUPTED without
 * entering the guest: a paused vCPU's state is then whole (save/restore, migration). */
#define GODWIT_RUN_NO_ENTRY 2u

struct godwit_hc_vcpu_run {
    /* in */
    godwit_u32 flags;
    godwit_u32 reserved0;
    godwit_u64 read_value;
    /* out */
    godwit_u32 exit_reason; /* enum godwit_exit_reason */
    godwit_u16 port;
    godwit_u8 size;      /* 1, 2, 4 (port I/O); 1, 2, 4, 8 (MMIO) */
    godwit_u8 direction; /* 0 = write (done), 1 = read (complete on the next run) */
    godwit_u64 value;    /* a write's value */
    godwit_u64 gpa;
    godwit_u64 rip;
    godwit_u64 qualification;
    godwit_u64 wake_tsc;  /* GODWIT_EXIT_HLT: the vCPU's next timer expiry (root TSC) */
    godwit_u32 wake_mask; /* other vCPUs of the partition with new work: bit n =
                             vCPU n; the VMM wakes their threads */
    godwit_u32 reserved1;
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_hc_vcpu_run) == 72, "vcpu run size");
GODWIT_STATIC_ASSERT(GODWIT_OFFSETOF(struct godwit_hc_vcpu_run, exit_reason) == 16, "offset");
GODWIT_STATIC_ASSERT(GODWIT_OFFSETOF(struct godwit_hc_vcpu_run, wake_tsc) == 56, "offset");

/* 1.3: GODWIT_HC_DIRTY_LOG. The first write to a page after ENABLE or the FETCH that
 * reported it sets its bit: logged by PML where the CPU has it (EPT dirty flags cleared),
 * by EPT write protection otherwise. */
enum godwit_dirty_op {
    GODWIT_DIRTY_DISABLE = 0,
    GODWIT_DIRTY_ENABLE = 1, /* clears the log and arms every RAM page */
    GODWIT_DIRTY_FETCH = 2,  /* copies [first_page, +pages) of the log out and clears it
                                (those pages are armed again) */
    GODWIT_DIRTY_ENABLE_WRITE_PROTECT = 3, /* 1.5: ENABLE by EPT write protection even where
                                              the CPU has PML (tests, comparisons) */
};
#define GODWIT_DIRTY_FETCH_MAX_PAGES 262144u /* 1 GiB of guest RAM per call */
struct godwit_hc_dirty_fetch {
    godwit_u64 first_page; /* guest page number, multiple of 64 */
    godwit_u32 pages;      /* multiple of 64, 64..GODWIT_DIRTY_FETCH_MAX_PAGES */
    godwit_u32 reserved;
    godwit_u64 bits[]; /* pages / 64 words: bit n of word w = page first + 64w + n */
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_hc_dirty_fetch) == 16, "dirty fetch header");

/* vCPU run state beyond godwit_hc_vcpu_state. */
enum godwit_mp_state {
    GODWIT_MP_RUNNABLE = 0,
    GODWIT_MP_HALTED = 1,        /* retired HLT, waits for an interrupt */
    GODWIT_MP_WAIT_FOR_SIPI = 2, /* an AP before its SIPI, or after INIT */
};

#define GODWIT_VCPU_EXTRA_FORMAT 1u
#define GODWIT_STATE_BLOB_BYTES 256u
/* Everything else of a vCPU that save/restore and migration carry, besides the registers of
 * godwit_hc_vcpu_state: run state, an event waiting for injection, the MSRs the hypervisor
 * keeps for the guest, the guest TSC, and the virtual LAPIC (hypervisor-defined blob,
 * validated on set). */
struct godwit_hc_vcpu_extra {
    godwit_u32 format;        /* GODWIT_VCPU_EXTRA_FORMAT */
    godwit_u32 mp_state;      /* enum godwit_mp_state */
    godwit_u32 pending_event; /* VM-entry interruption information (bit 31 = valid) */
    godwit_u32 pending_error_code;
    godwit_u32 pending_instruction_length;
    godwit_u32 interruptibility; /* STI / MOV-SS / NMI blocking */
    godwit_u64 guest_tsc;        /* the guest's TSC when saved; set continues from it */
    godwit_u64 pat, misc_enable, dr7, cr2;
    godwit_u64 sysenter_cs, sysenter_esp, sysenter_eip;
    godwit_u32 lapic_bytes; /* valid bytes of lapic[] */
    godwit_u32 reserved;
    godwit_u8 lapic[GODWIT_STATE_BLOB_BYTES];
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_hc_vcpu_extra) == 352, "vcpu extra size");

#define GODWIT_IRQCHIP_FORMAT 1u
struct godwit_hc_irqchip {
    godwit_u32 format; /* GODWIT_IRQCHIP_FORMAT */
    godwit_u32 ioapic_bytes;
    godwit_u8 ioapic[GODWIT_STATE_BLOB_BYTES];
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_hc_irqchip) == 264, "irqchip size");

/* 1.4: GODWIT_HC_VCPU_GET_FPU / SET_FPU. The guest's x87/SSE/AVX state in the standard
 * (non-compacted) format of XSAVE (Intel SDM Vol. 1, 13.4): the legacy region (the FXSAVE
 * image: FCW at 0, MXCSR at 24, ST0-7 at 32, XMM0-15 at 160), the XSAVE header at 512
 * (XSTATE_BV at 512, XCOMP_BV at 520 = 0, the rest zero) and each component i >= 2 at the
 * offset CPUID.(EAX=0DH, ECX=i).EBX gives. Components the hypervisor does not switch for
 * guests (`features` on get) must be absent from XSTATE_BV on set. On a CPU without XSAVE
 * the legacy region is FXSAVE's image and `features` is 3 (x87, SSE). */
#define GODWIT_FPU_FORMAT 1u
#define GODWIT_FPU_AREA_BYTES 3072u
#define GODWIT_FPU_LEGACY_BYTES 512u
#define GODWIT_FPU_HEADER_BYTES 64u
struct godwit_hc_vcpu_fpu {
    godwit_u32 format;     /* GODWIT_FPU_FORMAT */
    godwit_u32 area_bytes; /* get: bytes of xsave[] in use (576..GODWIT_FPU_AREA_BYTES);
                              set: bytes the caller filled (components must end within) */
    godwit_u64 xcr0;       /* the guest's XCR0 (1 after reset) */
    godwit_u64 features;   /* get: XSTATE components the hypervisor switches for guests;
                              set: ignored */
    godwit_u64 reserved[5];
    godwit_u8 xsave[GODWIT_FPU_AREA_BYTES];
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_hc_vcpu_fpu) == 3136, "vcpu fpu size");
GODWIT_STATIC_ASSERT(GODWIT_OFFSETOF(struct godwit_hc_vcpu_fpu, xcr0) == 8, "offset");
GODWIT_STATIC_ASSERT(GODWIT_OFFSETOF(struct godwit_hc_vcpu_fpu, xsave) == 64, "offset");

#endif /* GODWIT_HYPERCALL_H */
