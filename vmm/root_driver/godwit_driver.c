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
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
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

/* Partitions this descriptor created, and the user pages it pinned as their RAM. */
struct godwit_pinned {
	struct page **pages;
	unsigned long count;
};

struct godwit_file {
	struct mutex lock;
	bool owns[GODWIT_MAX_PARTITIONS];
	struct godwit_pinned pinned[GODWIT_MAX_PARTITIONS][8]; /* up to 8 RAM regions each */
};

static void godwit_unpin(struct godwit_pinned *p)
{
	if (p->pages) {
		unpin_user_pages_dirty_lock(p->pages, p->count, true);
		kvfree(p->pages);
	}
	p->pages = NULL;
	p->count = 0;
}

static long godwit_partition_destroy(struct godwit_file *f, u32 id)
{
	struct godwit_hc_result r;
	int i;

	if (id >= GODWIT_MAX_PARTITIONS || !f->owns[id])
		return -EINVAL;
	r = godwit_vmcall(GODWIT_HC_PARTITION_DESTROY, id, 0, 0);
	if (r.status != GODWIT_HC_OK)
		return godwit_errno(r.status);
	f->owns[id] = false;
	/* The hypervisor no longer maps these pages: they can go back to Linux. */
	for (i = 0; i < 8; ++i)
		godwit_unpin(&f->pinned[id][i]);
	return 0;
}

/* Pins the VMM's guest RAM and hands the hypervisor its physical pages, 512 at a time. */
static long godwit_partition_map(struct godwit_file *f, const struct godwit_ioctl_map *m)
{
	unsigned long count = m->bytes >> PAGE_SHIFT, done = 0;
	struct godwit_hc_map_frames *frames;
	struct godwit_pinned *slot = NULL;
	struct page **pages;
	long err = 0;
	int i;

	if (m->id >= GODWIT_MAX_PARTITIONS || !f->owns[m->id] || m->reserved ||
	    !m->bytes || (m->bytes | m->user_address | m->guest_gpa) & ~PAGE_MASK)
		return -EINVAL;
	for (i = 0; i < 8 && !slot; ++i)
		if (!f->pinned[m->id][i].pages)
			slot = &f->pinned[m->id][i];
	if (!slot)
		return -ENOSPC;
	pages = kvmalloc_array(count, sizeof(*pages), GFP_KERNEL);
	frames = kmalloc(sizeof(*frames) + GODWIT_MAX_MAP_FRAMES * sizeof(u64), GFP_KERNEL);
	if (!pages || !frames) {
		err = -ENOMEM;
		goto out;
	}
	while (done < count) {
		unsigned long n = min_t(unsigned long, count - done, GODWIT_MAX_MAP_FRAMES);
		struct godwit_hc_result r;
		long got;
		unsigned long k;

		got = pin_user_pages_fast(m->user_address + (done << PAGE_SHIFT), n,
					  FOLL_WRITE | FOLL_LONGTERM, pages + done);
		if (got < 0) {
			err = got;
			break;
		}
		done += got;
		if ((unsigned long)got < n) {
			err = -EFAULT;
			break;
		}
		frames->guest_gpa = m->guest_gpa + ((done - n) << PAGE_SHIFT);
		frames->count = n;
		frames->reserved = 0;
		for (k = 0; k < n; ++k)
			frames->frames[k] = page_to_phys(pages[done - n + k]);
		r = godwit_vmcall(GODWIT_HC_PARTITION_MAP, m->id, virt_to_phys(frames),
				  sizeof(*frames) + n * sizeof(u64));
		if (r.status != GODWIT_HC_OK) {
			err = godwit_errno(r.status);
			break;
		}
	}
out:
	kfree(frames);
	if (pages) {
		/* Pinned pages stay pinned while mapped; on failure the partition keeps whatever
		 * was mapped until it is destroyed, so keep them recorded either way. */
		slot->pages = pages;
		slot->count = done;
		if (!done) {
			kvfree(pages);
			slot->pages = NULL;
		}
	}
	return err;
}

/* One partition hypercall whose argument struct goes through a kernel buffer. */
static long godwit_call_struct(u64 call, u64 arg0, void *kbuf, size_t size)
{
	struct godwit_hc_result r = godwit_vmcall(call, arg0, virt_to_phys(kbuf), size);

	return godwit_errno(r.status);
}

/* The vCPU ioctls share one shape, { u32 id; u32 vcpu; the hypercall's struct }: copy it in,
 * check the caller owns the partition, make the call on the struct (kmalloc memory is
 * physically contiguous) and copy it back when `out`. */
static_assert(offsetof(struct godwit_ioctl_vcpu_state, state) == 8);
static_assert(offsetof(struct godwit_ioctl_vcpu_run, run) == 8);
static_assert(offsetof(struct godwit_ioctl_vcpu_extra, extra) == 8);
static_assert(offsetof(struct godwit_ioctl_vcpu_fpu, fpu) == 8);

static long godwit_vcpu_ioctl(struct godwit_file *f, void __user *uarg, size_t size, u64 call,
			      bool out)
{
	u32 *buf = kmalloc(size, GFP_KERNEL);
	long err;

	if (!buf)
		return -ENOMEM;
	err = copy_from_user(buf, uarg, size) ? -EFAULT : 0;
	if (!err && (buf[0] >= GODWIT_MAX_PARTITIONS || !f->owns[buf[0]]))
		err = -EINVAL;
	if (!err)
		err = godwit_call_struct(call, buf[0] | ((u64)buf[1] << 32), buf + 2, size - 8);
	if (!err && out && copy_to_user(uarg, buf, size))
		err = -EFAULT;
	kfree(buf);
	return err;
}

/* Dirty logging: enable/disable, or fetch `pages` bits through a bounce buffer. */
static long godwit_dirty_log(struct godwit_file *f, void __user *uarg)
{
	struct godwit_ioctl_dirty d;
	struct godwit_hc_dirty_fetch *buf;
	struct godwit_hc_result r;
	size_t bytes;
	long err = 0;

	if (copy_from_user(&d, uarg, sizeof(d)))
		return -EFAULT;
	if (d.id >= GODWIT_MAX_PARTITIONS || !f->owns[d.id] || d.reserved)
		return -EINVAL;
	if (d.op != GODWIT_DIRTY_FETCH) {
		r = godwit_vmcall(GODWIT_HC_DIRTY_LOG, d.id, d.op, 0);
		return r.status == GODWIT_HC_OK ? 0 : godwit_errno(r.status);
	}
	if (d.pages == 0 || d.pages % 64 || d.pages > GODWIT_DIRTY_FETCH_MAX_PAGES)
		return -EINVAL;
	bytes = sizeof(*buf) + d.pages / 8;
	buf = kzalloc(bytes, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	buf->first_page = d.first_page;
	buf->pages = d.pages;
	r = godwit_vmcall(GODWIT_HC_DIRTY_LOG, d.id, GODWIT_DIRTY_FETCH, virt_to_phys(buf));
	if (r.status != GODWIT_HC_OK)
		err = godwit_errno(r.status);
	else if (copy_to_user(u64_to_user_ptr(d.user_bits), buf->bits, d.pages / 8))
		err = -EFAULT;
	kfree(buf);
	return err;
}

static long godwit_partition_ioctl(struct godwit_file *f, unsigned int cmd, void __user *uarg)
{
	long err;

	switch (cmd) {
	case GODWIT_IOCTL_PARTITION_CREATE: {
		struct godwit_ioctl_partition_create c;
		struct godwit_hc_result r;

		if (copy_from_user(&c, uarg, sizeof(c)))
			return -EFAULT;
		r = godwit_vmcall(GODWIT_HC_PARTITION_CREATE, c.ram_bytes, c.vcpus, 0);
		if (r.status != GODWIT_HC_OK)
			return godwit_errno(r.status);
		c.id = (u32)r.value;
		f->owns[c.id] = true;
		return copy_to_user(uarg, &c, sizeof(c)) ? -EFAULT : 0;
	}
	case GODWIT_IOCTL_PARTITION_DESTROY: {
		u32 id;

		if (copy_from_user(&id, uarg, sizeof(id)))
			return -EFAULT;
		return godwit_partition_destroy(f, id);
	}
	case GODWIT_IOCTL_PARTITION_MAP: {
		struct godwit_ioctl_map m;

		if (copy_from_user(&m, uarg, sizeof(m)))
			return -EFAULT;
		return godwit_partition_map(f, &m);
	}
	case GODWIT_IOCTL_VCPU_SET_STATE:
	case GODWIT_IOCTL_VCPU_GET_STATE:
		return godwit_vcpu_ioctl(f, uarg, sizeof(struct godwit_ioctl_vcpu_state),
					 cmd == GODWIT_IOCTL_VCPU_GET_STATE ? GODWIT_HC_VCPU_GET_STATE
										 : GODWIT_HC_VCPU_SET_STATE,
					 cmd == GODWIT_IOCTL_VCPU_GET_STATE);
	case GODWIT_IOCTL_VCPU_RUN:
		return godwit_vcpu_ioctl(f, uarg, sizeof(struct godwit_ioctl_vcpu_run),
					 GODWIT_HC_VCPU_RUN, true);
	case GODWIT_IOCTL_DIRTY_LOG:
		return godwit_dirty_log(f, uarg);
	case GODWIT_IOCTL_VCPU_GET_EXTRA:
	case GODWIT_IOCTL_VCPU_SET_EXTRA:
		return godwit_vcpu_ioctl(f, uarg, sizeof(struct godwit_ioctl_vcpu_extra),
					 cmd == GODWIT_IOCTL_VCPU_GET_EXTRA ? GODWIT_HC_VCPU_GET_EXTRA
										 : GODWIT_HC_VCPU_SET_EXTRA,
					 cmd == GODWIT_IOCTL_VCPU_GET_EXTRA);
	case GODWIT_IOCTL_VCPU_GET_FPU:
	case GODWIT_IOCTL_VCPU_SET_FPU:
		return godwit_vcpu_ioctl(f, uarg, sizeof(struct godwit_ioctl_vcpu_fpu),
					 cmd == GODWIT_IOCTL_VCPU_GET_FPU ? GODWIT_HC_VCPU_GET_FPU
									      : GODWIT_HC_VCPU_SET_FPU,
					 cmd == GODWIT_IOCTL_VCPU_GET_FPU);
	case GODWIT_IOCTL_IRQCHIP_GET:
	case GODWIT_IOCTL_IRQCHIP_SET: {
		struct godwit_ioctl_irqchip *c = kmalloc(sizeof(*c), GFP_KERNEL);
		bool get = cmd == GODWIT_IOCTL_IRQCHIP_GET;

		if (!c)
			return -ENOMEM;
		err = copy_from_user(c, uarg, sizeof(*c)) ? -EFAULT : 0;
		if (!err && (c->id >= GODWIT_MAX_PARTITIONS || !f->owns[c->id] || c->reserved))
			err = -EINVAL;
		if (!err)
			err = godwit_call_struct(get ? GODWIT_HC_IRQCHIP_GET : GODWIT_HC_IRQCHIP_SET,
						 c->id, &c->chip, sizeof(c->chip));
		if (!err && get && copy_to_user(uarg, c, sizeof(*c)))
			err = -EFAULT;
		kfree(c);
		return err;
	}
	case GODWIT_IOCTL_PARTITION_IRQ: {
		struct godwit_ioctl_irq q;
		struct godwit_hc_result r;

		if (copy_from_user(&q, uarg, sizeof(q)))
			return -EFAULT;
		if (q.id >= GODWIT_MAX_PARTITIONS || !f->owns[q.id] || q.wake_mask)
			return -EINVAL;
		r = godwit_vmcall(GODWIT_HC_PARTITION_IRQ, q.id, q.pin, q.level);
		if (r.status != GODWIT_HC_OK)
			return godwit_errno(r.status);
		q.wake_mask = (u32)r.value;
		return copy_to_user(uarg, &q, sizeof(q)) ? -EFAULT : 0;
	}
	default:
		return -ENOTTY;
	}
}

static int godwit_open(struct inode *inode, struct file *file)
{
	struct godwit_file *f = kzalloc(sizeof(*f), GFP_KERNEL);

	if (!f)
		return -ENOMEM;
	mutex_init(&f->lock);
	file->private_data = f;
	return 0;
}

static int godwit_release(struct inode *inode, struct file *file)
{
	struct godwit_file *f = file->private_data;
	u32 id;

	for (id = 0; id < GODWIT_MAX_PARTITIONS; ++id)
		if (f->owns[id] && godwit_partition_destroy(f, id))
			pr_err("godwit: partition %u could not be destroyed at close\n", id);
	kfree(f);
	return 0;
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
	case GODWIT_IOCTL_VCPU_RUN:
	case GODWIT_IOCTL_PARTITION_IRQ:
		/* Without the lock: each vCPU thread runs its own vCPU concurrently, and device
		 * threads raise IRQs meanwhile (the hypervisor serializes what it must). */
		return godwit_partition_ioctl(file->private_data, cmd, uarg);
	default: {
		struct godwit_file *f = file->private_data;

		mutex_lock(&f->lock);
		err = godwit_partition_ioctl(f, cmd, uarg);
		mutex_unlock(&f->lock);
		return err;
	}
	}
}

static const struct file_operations godwit_fops = {
	.owner = THIS_MODULE,
	.open = godwit_open,
	.release = godwit_release,
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
