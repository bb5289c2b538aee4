// SPDX-License-Identifier: GPL-2.0
/*
 * A test module whose init frees pages with a flag set that a free page
 * must not have (PG_locked).  The page allocator checks pages of an order
 * that bypasses the per-CPU lists when they are freed, and prints "BUG: Bad
 * page state in process insmod  pfn:N"; it keeps the pages out of use,
 * taints the kernel and carries on.  Needs no debug option.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/init.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/module.h>
#include <linux/page-flags.h>
#include <linux/printk.h>

#define ORDER (PAGE_ALLOC_COSTLY_ORDER + 1)

static int __init bad_page_on_load_init(void)
{
	struct page *page = alloc_pages(GFP_KERNEL, ORDER);

	if (!page)
		return -ENOMEM;
	__SetPageLocked(page);
	__free_pages(page, ORDER);
	return 0;
}

static void __exit bad_page_on_load_exit(void)
{
}

module_init(bad_page_on_load_init);
module_exit(bad_page_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: bad page state on load");
