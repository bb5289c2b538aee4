// SPDX-License-Identifier: GPL-2.0
/*
 * lockup_on_load.c - a test module whose init busy-waits with preemption
 * disabled.
 *
 * Nothing else can run on the CPU, not even the soft-lockup watchdog's
 * per-CPU stopper work, so after twice /proc/sys/kernel/watchdog_thresh
 * seconds the watchdog's timer prints "watchdog: BUG: soft lockup -
 * CPU#N stuck for Ns!".  Interrupts stay on, so it is not a hard lockup.
 * Init then returns and the module stays loaded.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/printk.h>

static unsigned int seconds = 5;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "How long init spins (default: 5)");

static int __init lockup_on_load_init(void)
{
	unsigned int ms;

	pr_info("spinning for %u s with preemption disabled\n", seconds);
	preempt_disable();
	for (ms = 0; ms < seconds * MSEC_PER_SEC; ms++)
		mdelay(1);
	preempt_enable();
	pr_info("done spinning\n");
	return 0;
}

static void __exit lockup_on_load_exit(void)
{
}

module_init(lockup_on_load_init);
module_exit(lockup_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: soft lockup on load");
