// SPDX-License-Identifier: GPL-2.0
/*
 * A test module whose init allocates with GFP_KERNEL under a spinlock, on a
 * kernel built with CONFIG_DEBUG_ATOMIC_SLEEP (tests/golden/debug.config).
 * The allocation could sleep; it does not, but might_sleep() in the
 * allocator prints "BUG: sleeping function called from invalid context".
 * The module loads and the kernel carries on.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

static DEFINE_SPINLOCK(lock);

static int __init might_sleep_on_load_init(void)
{
	void *obj;

	spin_lock(&lock);
	obj = kmalloc(64, GFP_KERNEL);
	spin_unlock(&lock);
	kfree(obj);
	return 0;
}

static void __exit might_sleep_on_load_exit(void)
{
}

module_init(might_sleep_on_load_init);
module_exit(might_sleep_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: might_sleep() in atomic context on load");
