/*
 * /dev/godwit ioctl interface between the root driver and root userspace (godwitd, the
 * VMM). Shares its payload structs with the hypercall ABI (godwit_hypercall.h).
 * Documented in docs/hypercall-abi.md.
 */
#ifndef GODWIT_IOCTL_H
#define GODWIT_IOCTL_H

#include "godwit_hypercall.h"

#if defined(__KERNEL__)
#include <linux/ioctl.h>
#else
#include <sys/ioctl.h>
#endif

#define GODWIT_IOCTL_MAGIC 0xB7

/* Buffer-carrying request: userspace pointer + size in, bytes/items out. */
struct godwit_ioctl_buffer {
    godwit_u64 user_ptr;   /* in: userspace address of the buffer */
    godwit_u32 size;       /* in: buffer bytes */
    godwit_u32 reserved;   /* must be 0 */
    godwit_u64 position;   /* in: console read position (CONSOLE_READ only), else 0 */
    godwit_u64 result;     /* out: CPUs present (CPU_LIST) / text bytes (CONSOLE_READ) */
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_ioctl_buffer) == 32, "ioctl buffer size");

#define GODWIT_IOCTL_VERSION _IOR(GODWIT_IOCTL_MAGIC, 0x01, struct godwit_hc_version)
#define GODWIT_IOCTL_CPU_LIST _IOWR(GODWIT_IOCTL_MAGIC, 0x02, struct godwit_ioctl_buffer)
#define GODWIT_IOCTL_MEMORY_STATS _IOR(GODWIT_IOCTL_MAGIC, 0x03, struct godwit_hc_memory_stats)
#define GODWIT_IOCTL_CONSOLE_READ _IOWR(GODWIT_IOCTL_MAGIC, 0x04, struct godwit_ioctl_buffer)

/* Guest partitions (ABI 1.1). A partition belongs to the file descriptor that created it:
 * closing the descriptor destroys it and unpins its RAM. */
struct godwit_ioctl_partition_create {
    godwit_u64 ram_bytes;  /* in */
    godwit_u32 vcpus;      /* in */
    godwit_u32 id;         /* out */
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_ioctl_partition_create) == 16, "create size");

/* Guest RAM: the driver pins [user_address, +bytes) (the VMM's mapping, page-aligned) and
 * maps it at guest_gpa. */
struct godwit_ioctl_map {
    godwit_u32 id;
    godwit_u32 reserved;
    godwit_u64 guest_gpa;
    godwit_u64 user_address;
    godwit_u64 bytes;
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_ioctl_map) == 32, "map size");

struct godwit_ioctl_vcpu_state {
    godwit_u32 id;
    godwit_u32 vcpu;
    struct godwit_hc_vcpu_state state;
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_ioctl_vcpu_state) == 336, "vcpu state size");

struct godwit_ioctl_vcpu_run {
    godwit_u32 id;
    godwit_u32 vcpu;
    struct godwit_hc_vcpu_run run;
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_ioctl_vcpu_run) == 80, "vcpu run size");

/* A device line of the partition's IOAPIC; `wake_mask` returns the vCPUs to wake. */
struct godwit_ioctl_irq {
    godwit_u32 id;
    godwit_u32 pin;
    godwit_u32 level;
    godwit_u32 wake_mask;
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_ioctl_irq) == 16, "irq size");

/* 1.3: dirty logging. op = enum godwit_dirty_op; for GODWIT_DIRTY_FETCH, `pages` bits
 * (pages / 8 bytes) starting at guest page `first_page` go to `user_bits`. */
struct godwit_ioctl_dirty {
    godwit_u32 id;
    godwit_u32 op;
    godwit_u64 first_page;
    godwit_u32 pages;
    godwit_u32 reserved;
    godwit_u64 user_bits;
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_ioctl_dirty) == 32, "dirty size");

struct godwit_ioctl_vcpu_extra {
    godwit_u32 id;
    godwit_u32 vcpu;
    struct godwit_hc_vcpu_extra extra;
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_ioctl_vcpu_extra) == 360, "vcpu extra size");

struct godwit_ioctl_irqchip {
    godwit_u32 id;
    godwit_u32 reserved;
    struct godwit_hc_irqchip chip;
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_ioctl_irqchip) == 272, "irqchip size");

struct godwit_ioctl_vcpu_fpu { /* 1.4 */
    godwit_u32 id;
    godwit_u32 vcpu;
    struct godwit_hc_vcpu_fpu fpu;
};
GODWIT_STATIC_ASSERT(sizeof(struct godwit_ioctl_vcpu_fpu) == 3144, "vcpu fpu size");

#define GODWIT_IOCTL_PARTITION_CREATE \
    _IOWR(GODWIT_IOCTL_MAGIC, 0x10, struct godwit_ioctl_partition_create)
#define GODWIT_IOCTL_PARTITION_DESTROY _IOW(GODWIT_IOCTL_MAGIC, 0x11, godwit_u32)
#define GODWIT_IOCTL_PARTITION_MAP _IOW(GODWIT_IOCTL_MAGIC, 0x12, struct godwit_ioctl_map)
#define GODWIT_IOCTL_VCPU_SET_STATE _IOW(GODWIT_IOCTL_MAGIC, 0x13, struct godwit_ioctl_vcpu_state)
#define GODWIT_IOCTL_VCPU_RUN _IOWR(GODWIT_IOCTL_MAGIC, 0x14, struct godwit_ioctl_vcpu_run)
#define GODWIT_IOCTL_VCPU_GET_STATE \
    _IOWR(GODWIT_IOCTL_MAGIC, 0x15, struct godwit_ioctl_vcpu_state)
#define GODWIT_IOCTL_PARTITION_IRQ _IOWR(GODWIT_IOCTL_MAGIC, 0x16, struct godwit_ioctl_irq)
#define GODWIT_IOCTL_DIRTY_LOG _IOW(GODWIT_IOCTL_MAGIC, 0x17, struct godwit_ioctl_dirty)
#define GODWIT_IOCTL_VCPU_GET_EXTRA \
    _IOWR(GODWIT_IOCTL_MAGIC, 0x18, struct godwit_ioctl_vcpu_extra)
#define GODWIT_IOCTL_VCPU_SET_EXTRA _IOW(GODWIT_IOCTL_MAGIC, 0x19, struct godwit_ioctl_vcpu_extra)
#define GODWIT_IOCTL_IRQCHIP_GET _IOWR(GODWIT_IOCTL_MAGIC, 0x1A, struct godwit_ioctl_irqchip)
#define GODWIT_IOCTL_IRQCHIP_SET _IOW(GODWIT_IOCTL_MAGIC, 0x1B, struct godwit_ioctl_irqchip)
#define GODWIT_IOCTL_VCPU_GET_FPU _IOWR(GODWIT_IOCTL_MAGIC, 0x1C, struct godwit_ioctl_vcpu_fpu)
#define GODWIT_IOCTL_VCPU_SET_FPU _IOW(GODWIT_IOCTL_MAGIC, 0x1D, struct godwit_ioctl_vcpu_fpu)

#endif /* GODWIT_IOCTL_H */
