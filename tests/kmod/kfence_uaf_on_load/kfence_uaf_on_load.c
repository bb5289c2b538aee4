// SPDX-License-Identifier: GPL-2.0
/*
 * kfence_uaf_on_load.c - a test module whose init reads an object it has
 * freed, once KFENCE has placed that object on a guarded page.
 *
 * KFENCE only watches a sample of allocations (one per sample_interval
 * ms; Debian's 6.12 boots with the interval at 0, i.e. off, and
 * /sys/module/kfence/parameters/sample_interval turns it on).  Init
 * allocates and frees until it gets an object from the KFENCE pool, then
 * reads it after kfree(): "BUG: KFENCE: use-after-free read in ...".
 * KFENCE lets the read complete, so the module loads and the kernel
 * carries on.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/delay.h>
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/kfence.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>

static unsigned int seconds = 10;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "How long init waits for a KFENCE object (default: 10)");

static int __init kfence_uaf_on_load_init(void)
{
	unsigned long deadline = jiffies + seconds * HZ;
	char *obj;

	do {
		obj = kmalloc(32, GFP_KERNEL);
		if (!obj)
			return -ENOMEM;
		if (is_kfence_address(obj)) {
			kfree(obj);
			pr_info("read 0x%x after kfree\n", READ_ONCE(obj[0]));
			return 0;
		}
		kfree(obj);
		usleep_range(1000, 2000);
	} while (time_before(jiffies, deadline));

	pr_warn("no KFENCE object in %u s: is KFENCE sampling on?\n", seconds);
	return -EAGAIN;
}

static void __exit kfence_uaf_on_load_exit(void)
{
}

module_init(kfence_uaf_on_load_init);
module_exit(kfence_uaf_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: KFENCE use-after-free on load");
