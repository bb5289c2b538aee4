// SPDX-License-Identifier: GPL-2.0
/*
 * netdev_leak_on_load.c - a test module whose init unregisters a network
 * device while it still holds a reference to it.
 *
 * unregister_netdev() waits until every reference to the device is
 * dropped, and every netdev_unregister_timeout_secs (10 s by default,
 * /proc/sys/net/core/netdev_unregister_timeout_secs) it logs
 * "unregister_netdevice: waiting for NAME to become free. Usage count =
 * N".  Here a delayed work drops the reference after hold_ms, so the wait
 * ends, init returns and the module stays loaded.  No network is needed:
 * the device is never brought up.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/etherdevice.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/printk.h>
#include <linux/skbuff.h>
#include <linux/workqueue.h>

static unsigned int hold_ms = 3500;
module_param(hold_ms, uint, 0444);
MODULE_PARM_DESC(hold_ms, "How long the extra reference is held (default: 3500)");

static struct net_device *leaky;

static netdev_tx_t leaky_xmit(struct sk_buff *skb, struct net_device *dev)
{
	dev_kfree_skb(skb);
	return NETDEV_TX_OK;
}

static const struct net_device_ops leaky_ops = {
	.ndo_start_xmit = leaky_xmit,
};

static void leaky_setup(struct net_device *dev)
{
	ether_setup(dev);
	dev->netdev_ops = &leaky_ops;
}

static void drop_ref(struct work_struct *work)
{
	pr_info("dropping the reference to %s\n", leaky->name);
	dev_put(leaky);
}

static DECLARE_DELAYED_WORK(drop_ref_work, drop_ref);

static int __init netdev_leak_on_load_init(void)
{
	int err;

	leaky = alloc_netdev(0, "leaky%d", NET_NAME_ENUM, leaky_setup);
	if (!leaky)
		return -ENOMEM;
	err = register_netdev(leaky);
	if (err) {
		free_netdev(leaky);
		return err;
	}

	dev_hold(leaky);
	schedule_delayed_work(&drop_ref_work, msecs_to_jiffies(hold_ms));
	pr_info("unregistering %s with a reference held for %u ms\n",
		leaky->name, hold_ms);
	unregister_netdev(leaky);	/* returns once drop_ref() has run */
	flush_delayed_work(&drop_ref_work);
	free_netdev(leaky);
	pr_info("unregistered\n");
	return 0;
}

static void __exit netdev_leak_on_load_exit(void)
{
}

module_init(netdev_leak_on_load_init);
module_exit(netdev_leak_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: unregister_netdevice waits on load");
