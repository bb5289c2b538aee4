// SPDX-License-Identifier: GPL-2.0
/*
 * A test module whose init makes lockdep report, on a kernel built with
 * CONFIG_PROVE_LOCKING (tests/golden/debug.config).
 *
 * The report= parameter names the misuse.  Lockdep turns itself off after
 * its first report (all but "rcu"), so each boot loads this module once for
 * one report.  Nothing here deadlocks: one task takes the locks, and none is
 * contended.  Only "return_to_user" and "held_at_exit" leave a lock held;
 * "held_freed" leaves a held lock in freed memory.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/printk.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/timer.h>

static char *report = "circular";
module_param(report, charp, 0444);
MODULE_PARM_DESC(report,
		 "circular, recursive, inconsistent, irq_inversion, irq_order, wait_context, unlock_balance, held_freed, held_at_exit, return_to_user, nested, rcu or non_static_key");

struct holder {
	struct mutex lock;
};

static DEFINE_MUTEX(mutex_a);
static DEFINE_MUTEX(mutex_b);
static DEFINE_SPINLOCK(lock_a);
static DEFINE_SPINLOCK(lock_b);
static struct mutex same_class[2];
static struct holder __rcu *shared;
static struct timer_list timer;

/* The timer's callback runs in softirq context: lock_a becomes softirq-safe. */
static void take_lock_a(struct timer_list *unused)
{
	spin_lock(&lock_a);
	spin_unlock(&lock_a);
}

static void take_lock_a_in_softirq(void)
{
	timer_setup(&timer, take_lock_a, 0);
	mod_timer(&timer, jiffies + 1);
	msleep(100);
	del_timer_sync(&timer);
}

/* A then B, later B then A. */
static void circular(void)
{
	mutex_lock(&mutex_a);
	mutex_lock(&mutex_b);
	mutex_unlock(&mutex_b);
	mutex_unlock(&mutex_a);

	mutex_lock(&mutex_b);
	mutex_lock(&mutex_a);
	mutex_unlock(&mutex_a);
	mutex_unlock(&mutex_b);
}

/* Two mutexes of one class (initialised at one place), nested without a subclass. */
static void recursive(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(same_class); i++)
		mutex_init(&same_class[i]);
	mutex_lock(&same_class[0]);
	mutex_lock(&same_class[1]);
	mutex_unlock(&same_class[1]);
	mutex_unlock(&same_class[0]);
}

/* lock_a with softirqs on, then in a softirq: {SOFTIRQ-ON-W} -> {IN-SOFTIRQ-W}. */
static void inconsistent(void)
{
	spin_lock(&lock_a);
	spin_unlock(&lock_a);
	take_lock_a_in_softirq();
}

/* lock_b is softirq-unsafe and comes after lock_a; then lock_a becomes softirq-safe. */
static void irq_inversion(void)
{
	spin_lock(&lock_b);
	spin_unlock(&lock_b);
	spin_lock_bh(&lock_a);
	spin_lock(&lock_b);
	spin_unlock(&lock_b);
	spin_unlock_bh(&lock_a);
	take_lock_a_in_softirq();
}

/* lock_a is softirq-safe, then the softirq-unsafe lock_b is taken under it. */
static void irq_order(void)
{
	take_lock_a_in_softirq();
	spin_lock(&lock_b);
	spin_unlock(&lock_b);
	spin_lock_bh(&lock_a);
	spin_lock(&lock_b);
	spin_unlock(&lock_b);
	spin_unlock_bh(&lock_a);
}

/*
 * A mutex under a spinlock.  It is free, so mutex_lock() does not sleep, but
 * might_sleep() reports first (CONFIG_DEBUG_ATOMIC_SLEEP), then lockdep.
 */
static void wait_context(void)
{
	spin_lock(&lock_a);
	mutex_lock(&mutex_a);
	mutex_unlock(&mutex_a);
	spin_unlock(&lock_a);
}

static void unlock_balance(void)
{
	mutex_unlock(&mutex_a);
}

static void held_freed(void)
{
	struct holder *h = kmalloc(sizeof(*h), GFP_KERNEL);

	if (!h)
		return;
	mutex_init(&h->lock);
	mutex_lock(&h->lock);
	kfree(h);
}

static int hold_and_exit(void *unused)
{
	mutex_lock(&mutex_b);
	return 0;
}

static void held_at_exit(void)
{
	struct task_struct *task = kthread_run(hold_and_exit, NULL, KBUILD_MODNAME);

	if (!IS_ERR(task))
		msleep(500);
}

static void return_to_user(void)
{
	mutex_lock(&mutex_b);
}

/* mutex_lock_nest_lock() names an outer lock that is not held. */
static void nested(void)
{
	mutex_lock_nest_lock(&mutex_b, &mutex_a);
	mutex_unlock(&mutex_b);
}

static void rcu(void)
{
	pr_info("shared is %p\n", rcu_dereference(shared));
}

/* A spinlock never initialised: lockdep finds no class key in it. */
static void non_static_key(void)
{
	spinlock_t *lock = kzalloc(sizeof(*lock), GFP_KERNEL);

	if (!lock)
		return;
	spin_lock(lock);
	spin_unlock(lock);
	kfree(lock);
}

static const struct {
	const char *name;
	void (*run)(void);
} reports[] = {
	{ "circular", circular },
	{ "recursive", recursive },
	{ "inconsistent", inconsistent },
	{ "irq_inversion", irq_inversion },
	{ "irq_order", irq_order },
	{ "wait_context", wait_context },
	{ "unlock_balance", unlock_balance },
	{ "held_freed", held_freed },
	{ "held_at_exit", held_at_exit },
	{ "return_to_user", return_to_user },
	{ "nested", nested },
	{ "rcu", rcu },
	{ "non_static_key", non_static_key },
};

static int __init lockdep_on_load_init(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(reports); i++) {
		if (!strcmp(report, reports[i].name)) {
			pr_info("%s\n", report);
			reports[i].run();
			return 0;
		}
	}
	pr_err("unknown report=%s\n", report);
	return -EINVAL;
}

static void __exit lockdep_on_load_exit(void)
{
}

module_init(lockdep_on_load_init);
module_exit(lockdep_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: lockdep reports on load");
