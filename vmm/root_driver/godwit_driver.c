// SPDX-License-Identifier: GPL-2.0
/*
 * godwit.ko — the root partition's driver for the Godwit hypervisor (like Xen's privcmd or
 * ACRN's HSM). It exposes /dev/godwit; each ioctl becomes one VMCALL (hypercall ABI in
 * hypervisor/abi/godwit_hypercall.h, documented in docs/hypercall-abi.md). Kept small on
 * purpose: validation of hypercall arguments is the hypervisor's job, the driver only moves
 * buffers between userspace and physically contiguous kernel memory.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <asm/io.h>
#include <asm/processor.h>

#include "godwit_ioctl.h"

#define GODWIT_MAX_CPU_BUFFER (4096u * sizeof(struct godwit_hc_cpu))

struct godwit_hc_result {
	u64 status;
	u64 value;
};

static struct godwit_hc_result godwit_vmcall(u64 call, u64 arg0, u64 arg1, u64 arg2)
{
	struct godwit_hc_result r;
	register u64 rdx asm("rdx") = arg2;

	asm volatile("vmcall"
		     : "=a"(r.status), "+r"(rdx)
		     : "a"(call), "D"(arg0), "S"(arg1)
		     : "memory");
	r.value = rdx;
	return r;
}

/* Hypercall status -> errno for userspace. */
static long godwit_errno(u64 status)
{
	switch (status) {
	case GODWIT_HC_OK: return 0;
	case GODWIT_HC_UNKNOWN_CALL: return -ENOSYS;
	case GODWIT_HC_BAD_ADDRESS: return -EFAULT;
	case GODWIT_HC_BAD_LENGTH: return -EINVAL;
	case GODWIT_HC_BAD_ARGUMENT: return -EINVAL;
	case GODWIT_HC_DENIED: return -EPERM;
	case GODWIT_HC_NO_MEMORY: return -ENOMEM;
	case GODWIT_HC_BUSY: return -EBUSY;
	default: return -EIO;
	}
}

/* One hypercall whose output lands in a kernel buffer of `size` bytes, then to `uptr`. */
static long godwit_call_out(u64 call, void __user *uptr, size_t size, u64 arg2, u64 *value)
{
	struct godwit_hc_result r;
	void *buf;
	long err;

	buf = kzalloc(size, GFP_KERNEL); /* kmalloc memory is physically contiguous */
	if (!buf)
		return -ENOMEM;
	r = godwit_vmcall(call, virt_to_phys(buf), size, arg2);
	err = godwit_errno(r.status);
	if (!err && copy_to_user(uptr, buf, size))
		err = -EFAULT;
	if (value)
		*value = r.value;
	kfree(buf);
	return err;
}

static long godwit_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;
	struct godwit_ioctl_buffer req;
	size_t limit;
	u64 call;
	long err;

	switch (cmd) {
	case GODWIT_IOCTL_VERSION:
		return godwit_call_out(GODWIT_HC_VERSION, uarg, sizeof(struct godwit_hc_version), 0,
				       NULL);
	case GODWIT_IOCTL_MEMORY_STATS:
		return godwit_call_out(GODWIT_HC_MEMORY_STATS, uarg,
				       sizeof(struct godwit_hc_memory_stats), 0, NULL);
	case GODWIT_IOCTL_CPU_LIST:
	case GODWIT_IOCTL_CONSOLE_READ:
		if (copy_from_user(&req, uarg, sizeof(req)))
			return -EFAULT;
		if (req.reserved)
			return -EINVAL;
		if (cmd == GODWIT_IOCTL_CPU_LIST) {
			call = GODWIT_HC_CPU_LIST;
			limit = GODWIT_MAX_CPU_BUFFER;
		} else {
			call = GODWIT_HC_CONSOLE_READ;
			limit = GODWIT_HC_CONSOLE_READ_MAX + sizeof(struct godwit_hc_console_chunk);
		}
		if (req.size == 0 || req.size > limit)
			return -EINVAL;
		err = godwit_call_out(call, u64_to_user_ptr(req.user_ptr), req.size, req.position,
				      &req.result);
		if (err)
			return err;
		return copy_to_user(uarg, &req, sizeof(req)) ? -EFAULT : 0;
	default:
		return -ENOTTY;
	}
}

static const struct file_operations godwit_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = godwit_ioctl,
	.compat_ioctl = godwit_ioctl,
};

static struct miscdevice godwit_device = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "godwit",
	.fops = &godwit_fops,
	.mode = 0600,
};

/* VMCALL outside a hypervisor that handles it is #UD: only proceed on Godwit. */
static bool godwit_present(u32 *abi)
{
	u32 eax, ebx, ecx, edx;
	char sig[13];

	if (!boot_cpu_has(X86_FEATURE_HYPERVISOR)) {
		pr_err("godwit: not running under a hypervisor (CPUID.1:ECX.HV=0); /dev/godwit not created\n");
		return false;
	}
	cpuid(GODWIT_CPUID_LEAF_SIGNATURE, &eax, &ebx, &ecx, &edx);
	memcpy(sig + 0, &ebx, 4);
	memcpy(sig + 4, &ecx, 4);
	memcpy(sig + 8, &edx, 4);
	sig[12] = '\0';
	if (ebx != GODWIT_CPUID_SIGNATURE_EBX || ecx != GODWIT_CPUID_SIGNATURE_ECX ||
	    edx != GODWIT_CPUID_SIGNATURE_EDX || eax < GODWIT_CPUID_LEAF_ABI) {
		pr_err("godwit: hypervisor signature is '%s', not 'GodwitGodwit'; /dev/godwit not created\n",
		       sig);
		return false;
	}
	*abi = cpuid_eax(GODWIT_CPUID_LEAF_ABI);
	return true;
}

static int __init godwit_init(void)
{
	u32 abi = 0;
	int err;

	if (!godwit_present(&abi))
		return -ENODEV;
	if ((abi >> 16) != GODWIT_HC_ABI_MAJOR) {
		pr_err("godwit: hypervisor ABI %u.%u, driver speaks %u.x; /dev/godwit not created\n",
		       abi >> 16, abi & 0xffff, GODWIT_HC_ABI_MAJOR);
		return -EPROTO;
	}
	err = misc_register(&godwit_device);
	if (err)
		return err;
	pr_info("godwit: hypervisor ABI %u.%u, /dev/godwit ready\n", abi >> 16, abi & 0xffff);
	return 0;
}

static void __exit godwit_exit(void)
{
	misc_deregister(&godwit_device);
}

module_init(godwit_init);
module_exit(godwit_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Godwit hypervisor root partition driver (/dev/godwit)");
