// SPDX-License-Identifier: GPL-2.0
/*
 * hang_on_load.c - a test module whose init blocks uninterruptibly.
 *
 * msleep() sleeps in TASK_UNINTERRUPTIBLE, so insmod sits in state D.
 * With /proc/sys/kernel/hung_task_timeout_secs lowered below the sleep,
 * khungtaskd reports "INFO: task insmod:PID blocked for more than N
 * seconds."  Init then returns and the module stays loaded.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static unsigned int seconds = 8;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "How long init sleeps (default: 8)");

static int __init hang_on_load_init(void)
{
	pr_info("sleeping uninterruptibly for %u s\n", seconds);
	msleep(seconds * MSEC_PER_SEC);
	pr_info("awake again\n");
	return 0;
}

static void __exit hang_on_load_exit(void)
{
}

module_init(hang_on_load_init);
module_exit(hang_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: block in state D on load");
