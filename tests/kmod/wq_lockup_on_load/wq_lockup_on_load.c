// SPDX-License-Identifier: GPL-2.0
/*
 * A test module whose init queues a work item that keeps its CPU's worker
 * pool busy for `seconds` without sleeping, and a second one behind it, on a
 * kernel built with CONFIG_WQ_WATCHDOG (tests/golden/debug.config).  The
 * first calls cond_resched(), so neither RCU nor the soft-lockup detector
 * complains, but it never sleeps, so the pool starts no other worker: once
 * the second has waited longer than workqueue.watchdog_thresh seconds the
 * watchdog prints "BUG: workqueue lockup - pool cpus=N ...".  Init waits for
 * both; the module loads.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/sched.h>
#include <linux/smp.h>
#include <linux/workqueue.h>

static unsigned int seconds = 5;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "How long the first work item holds the pool (default: 5)");

static void hog(struct work_struct *unused)
{
	unsigned long until = jiffies + seconds * HZ;

	while (time_before(jiffies, until)) {
		mdelay(10);
		cond_resched();
	}
}

static void behind(struct work_struct *unused)
{
	pr_info("the second work item ran\n");
}

static DECLARE_WORK(hog_work, hog);
static DECLARE_WORK(behind_work, behind);

static int __init wq_lockup_on_load_init(void)
{
	int cpu = get_cpu();

	queue_work_on(cpu, system_wq, &hog_work);
	queue_work_on(cpu, system_wq, &behind_work);
	put_cpu();
	flush_work(&hog_work);
	flush_work(&behind_work);
	return 0;
}

static void __exit wq_lockup_on_load_exit(void)
{
}

module_init(wq_lockup_on_load_init);
module_exit(wq_lockup_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: workqueue lockup on load");
