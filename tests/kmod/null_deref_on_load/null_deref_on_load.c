// SPDX-License-Identifier: GPL-2.0
/*
 * null_deref_on_load.c - a test module whose init reads through a NULL
 * struct pointer.
 *
 * Reading a member at offset 8 of a pointer nobody set faults on an
 * address in the first page, which x86 reports as "BUG: kernel NULL
 * pointer dereference, address: 0000000000000008" (before 4.19: "BUG:
 * unable to handle kernel NULL pointer dereference at ...") and then an
 * oops.  insmod is killed; the kernel carries on.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

struct point {
	long x;
	long y;
};

static struct point *origin;	/* never set: the bug */

static int __init null_deref_on_load_init(void)
{
	pr_info("origin is at (%ld, %ld)\n", READ_ONCE(origin->x), READ_ONCE(origin->y));
	return 0;
}

static void __exit null_deref_on_load_exit(void)
{
}

module_init(null_deref_on_load_init);
module_exit(null_deref_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: NULL pointer dereference on load");
