// SPDX-License-Identifier: GPL-2.0
/*
 * A test module whose init and a hard-interrupt timer both increment one
 * counter with plain, unmarked accesses, on a kernel built with
 * CONFIG_KCSAN and CONFIG_KCSAN_INTERRUPT_WATCHER
 * (tests/golden/debug-kcsan.config), once KCSAN is on (echo on >
 * /sys/kernel/debug/kcsan).
 *
 * The guest has one CPU, so the race is between init and the interrupt
 * that comes while KCSAN holds a watchpoint on the counter: "BUG: KCSAN:
 * data-race in ...".  Init runs for `seconds`, then stops the timer; the
 * module loads.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/hrtimer.h>
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/sched.h>

static unsigned int seconds = 2;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "How long init races with the timer (default: 2)");

static unsigned long counter;
static struct hrtimer timer;

static noinline void bump(void)
{
	counter++;
}

static enum hrtimer_restart tick(struct hrtimer *t)
{
	bump();
	hrtimer_forward_now(t, ns_to_ktime(100 * NSEC_PER_USEC));
	return HRTIMER_RESTART;
}

static int __init kcsan_race_on_load_init(void)
{
	unsigned long until = jiffies + seconds * HZ;

	hrtimer_init(&timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_HARD);
	timer.function = tick;
	hrtimer_start(&timer, ns_to_ktime(100 * NSEC_PER_USEC), HRTIMER_MODE_REL_HARD);
	while (time_before(jiffies, until)) {
		bump();
		cond_resched();
	}
	hrtimer_cancel(&timer);
	pr_info("counter is %lu\n", counter);
	return 0;
}

static void __exit kcsan_race_on_load_exit(void)
{
}

module_init(kcsan_race_on_load_init);
module_exit(kcsan_race_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: KCSAN data race on load");
