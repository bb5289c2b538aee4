// SPDX-License-Identifier: GPL-2.0
/*
 * A test module whose init keeps its CPU from a quiescent state while an RCU
 * grace period is in progress: "rcu: INFO: rcu_sched self-detected stall on
 * CPU" once rcupdate.rcu_cpu_stall_timeout seconds (3 at least; 5 more
 * under CONFIG_PROVE_RCU) have gone.
 *
 * In a guest with one CPU nothing else can start a grace period while init
 * spins, so init first asks for one and lets the grace-period kthread run
 * (cond_resched(), never idle: an idle CPU would end the grace period at
 * once) until it has started it (the state cookie moved on but its grace
 * period has not ended), then spins with preemption and softirqs off
 * (which also keeps RCU's softirq from reporting the CPU's last context
 * switch) for `seconds`.  Whether RCU then finds this CPU stalled ("self-
 * detected") or only its own kthread unable to run ("detected stalls on
 * CPUs/tasks", "kthread starved"), it reports a stall.  Then the CPU goes
 * on and the grace period ends.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bottom_half.h>
#include <linux/delay.h>
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/printk.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>

static unsigned int seconds = 12;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "How long init holds the CPU (default: 12)");

static int __init rcu_stall_on_load_init(void)
{
	unsigned long idle = get_state_synchronize_rcu();
	unsigned long deadline = jiffies + 10 * HZ;
	unsigned long ms;

	for (;;) {
		unsigned long cookie = start_poll_synchronize_rcu();

		if (cookie != idle && !poll_state_synchronize_rcu(idle))
			break;	/* a grace period is under way */
		if (poll_state_synchronize_rcu(idle))
			idle = get_state_synchronize_rcu();
		if (time_after(jiffies, deadline)) {
			pr_warn("no grace period started\n");
			return -EAGAIN;
		}
		cond_resched();
	}
	local_bh_disable();
	preempt_disable();
	for (ms = 0; ms < seconds * 1000UL; ms++)
		mdelay(1);
	preempt_enable();
	local_bh_enable();
	return 0;
}

static void __exit rcu_stall_on_load_exit(void)
{
}

module_init(rcu_stall_on_load_init);
module_exit(rcu_stall_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: RCU CPU stall on load");
