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

#endif /* GODWIT_IOCTL_H */
