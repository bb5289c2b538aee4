// SPDX-License-Identifier: GPL-2.0
/*
 * A test module whose init shifts an int by more than its width and indexes
 * an array past its end, on a kernel built with CONFIG_UBSAN_SHIFT and
 * CONFIG_UBSAN_BOUNDS (tests/golden/debug.config).  Kbuild sets
 * UBSAN_SANITIZE for this module alone.  UBSAN prints "UBSAN:
 * shift-out-of-bounds in FILE:L:C" and "UBSAN: array-index-out-of-bounds in
 * FILE:L:C"; the index stays inside the structure, so KASAN has nothing to
 * say.  The module loads.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static struct {
	int slots[4];
	int after;
} table;

static int __init ubsan_on_load_init(void)
{
	int shift = 40;
	int index = 4;

	/* Values the compiler cannot see, so the checks run at run time. */
	OPTIMIZER_HIDE_VAR(shift);
	OPTIMIZER_HIDE_VAR(index);
	pr_info("1 << %d is %d\n", shift, 1 << shift);
	pr_info("slots[%d] is %d\n", index, table.slots[index]);
	return 0;
}

static void __exit ubsan_on_load_exit(void)
{
}

module_init(ubsan_on_load_init);
module_exit(ubsan_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: UBSAN reports on load");
