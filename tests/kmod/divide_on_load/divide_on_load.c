// SPDX-License-Identifier: GPL-2.0
/*
 * divide_on_load.c - a test module whose init divides by zero.
 *
 * The divisor is a module parameter, so the compiler cannot fold the
 * division away: the CPU raises #DE and the kernel prints an oops
 * headed "divide error" (6.12: "Oops: divide error").  insmod is
 * killed; the kernel carries on.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static int divisor;
module_param(divisor, int, 0444);
MODULE_PARM_DESC(divisor, "What init divides 1000 by (default: 0)");

static int __init divide_on_load_init(void)
{
	pr_info("dividing 1000 by %d\n", divisor);
	pr_info("1000 / %d = %d\n", divisor, 1000 / divisor);
	return 0;
}

static void __exit divide_on_load_exit(void)
{
}

module_init(divide_on_load_init);
module_exit(divide_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: divide by zero on load");
