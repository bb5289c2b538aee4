// SPDX-License-Identifier: GPL-2.0
/*
 * atomic_sleep_on_load.c - a test module whose init sleeps with
 * preemption disabled.
 *
 * The scheduler notices a task that blocks while its preempt count is
 * raised and prints "BUG: scheduling while atomic".  That check needs no
 * debug option; the earlier "BUG: sleeping function called from invalid
 * context" from might_sleep() needs CONFIG_DEBUG_ATOMIC_SLEEP, which
 * Debian's kernels do not set.  The module loads; the kernel carries on.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/printk.h>

static int __init atomic_sleep_on_load_init(void)
{
	preempt_disable();
	msleep(20);
	/*
	 * No preempt_enable(): after its report the scheduler reset the
	 * preempt count to what schedule() expects, which dropped the
	 * level taken above.  Enabling here would make the count negative.
	 */
	pr_info("slept with preemption disabled\n");
	return 0;
}

static void __exit atomic_sleep_on_load_exit(void)
{
}

module_init(atomic_sleep_on_load_init);
module_exit(atomic_sleep_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: schedule while atomic on load");
