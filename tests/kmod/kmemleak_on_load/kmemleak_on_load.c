// SPDX-License-Identifier: GPL-2.0
/*
 * A test module whose init allocates a few objects and forgets them, on a
 * kernel built with CONFIG_DEBUG_KMEMLEAK (tests/golden/debug.config).  A
 * scan (echo scan > /sys/kernel/debug/kmemleak) once they are five seconds
 * old finds no reference to them and logs "kmemleak: N new suspected memory
 * leaks (see /sys/kernel/debug/kmemleak)".
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>

#define LEAKS 2

static int __init kmemleak_on_load_init(void)
{
	int i;

	for (i = 0; i < LEAKS; i++) {
		void *leaked = kmalloc(128, GFP_KERNEL);

		if (!leaked)
			return -ENOMEM;
	}
	pr_info("%d objects leaked\n", LEAKS);
	return 0;
}

static void __exit kmemleak_on_load_exit(void)
{
}

module_init(kmemleak_on_load_init);
module_exit(kmemleak_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: kmemleak finds leaks after load");
