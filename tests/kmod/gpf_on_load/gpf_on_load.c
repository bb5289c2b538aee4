// SPDX-License-Identifier: GPL-2.0
/*
 * gpf_on_load.c - a test module whose init reads a non-canonical address.
 *
 * On x86-64 an access outside the canonical halves of the address space
 * is not a page fault but #GP, so the oops is headed "general protection
 * fault, probably for non-canonical address ...".  The default address
 * is the list poison value a use-after-list_del() would follow.  insmod
 * is killed; the kernel carries on.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static unsigned long address = 0xdead000000000100UL;
module_param(address, ulong, 0444);
MODULE_PARM_DESC(address, "The address init reads (default: 0xdead000000000100)");

static int __init gpf_on_load_init(void)
{
	unsigned long value;

	pr_info("reading 0x%lx\n", address);
	value = READ_ONCE(*(unsigned long *)address);
	pr_info("read 0x%lx\n", value);
	return 0;
}

static void __exit gpf_on_load_exit(void)
{
}

module_init(gpf_on_load_init);
module_exit(gpf_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: general protection fault on load");
