// SPDX-License-Identifier: GPL-2.0
/*
 * A test module whose init frees memory that holds a pending timer, on a
 * kernel built with CONFIG_DEBUG_OBJECTS_FREE and
 * CONFIG_DEBUG_OBJECTS_TIMERS (tests/golden/debug.config).  debugobjects
 * prints "ODEBUG: free active (active state 0) object: ... object type:
 * timer_list" in a WARN and fixes it up (the timer is deleted before the
 * memory goes), so the module loads.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>
#include <linux/timer.h>

struct pending {
	struct timer_list timer;
};

static void never_fires(struct timer_list *unused)
{
	pr_info("timer fired\n");
}

static int __init odebug_on_load_init(void)
{
	struct pending *p = kmalloc(sizeof(*p), GFP_KERNEL);

	if (!p)
		return -ENOMEM;
	timer_setup(&p->timer, never_fires, 0);
	mod_timer(&p->timer, jiffies + 600 * HZ);
	kfree(p);
	return 0;
}

static void __exit odebug_on_load_exit(void)
{
}

module_init(odebug_on_load_init);
module_exit(odebug_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: debugobjects report on load");
