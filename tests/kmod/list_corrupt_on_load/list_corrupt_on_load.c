// SPDX-License-Identifier: GPL-2.0
/*
 * list_corrupt_on_load.c - a test module whose init deletes a list entry
 * twice.
 *
 * list_del() leaves poison values in the entry's pointers.  With
 * CONFIG_DEBUG_LIST (or CONFIG_LIST_HARDENED) the second list_del() finds
 * them and reports "list_del corruption"; Debian also sets
 * CONFIG_BUG_ON_DATA_CORRUPTION, so the report ends in BUG() and an oops
 * that kills insmod.  The kernel carries on.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/printk.h>

struct item {
	struct list_head node;
	int value;
};

static LIST_HEAD(items);
static struct item only = { .value = 1 };

static int __init list_corrupt_on_load_init(void)
{
	list_add(&only.node, &items);
	list_del(&only.node);
	pr_info("deleting item %d a second time\n", only.value);
	list_del(&only.node);
	return 0;
}

static void __exit list_corrupt_on_load_exit(void)
{
}

module_init(list_corrupt_on_load_init);
module_exit(list_corrupt_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: list_del() twice on load");
