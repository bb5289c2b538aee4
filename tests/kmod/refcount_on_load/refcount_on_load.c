// SPDX-License-Identifier: GPL-2.0
/*
 * refcount_on_load.c - a test module whose init misuses two refcount_t.
 *
 * refcount_t refuses to go from 0 to 1 or below 0: each misuse prints a
 * "refcount_t: ..." line inside a WARN splat and saturates the counter
 * (the object leaks instead of being freed twice).  The module loads;
 * the kernel carries on.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/refcount.h>

static refcount_t released = REFCOUNT_INIT(0);
static refcount_t owned = REFCOUNT_INIT(1);

static int __init refcount_on_load_init(void)
{
	/* A get on an object whose last reference is gone. */
	refcount_inc(&released);

	if (refcount_dec_and_test(&owned))
		pr_info("dropped the last reference\n");
	/* One put too many. */
	if (refcount_dec_and_test(&owned))
		pr_info("dropped the last reference again\n");
	return 0;
}

static void __exit refcount_on_load_exit(void)
{
}

module_init(refcount_on_load_init);
module_exit(refcount_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: refcount_t misuse on load");
