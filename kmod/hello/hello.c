// SPDX-License-Identifier: GPL-2.0
/*
 * hello.c - the smallest module that still says something.
 *
 * It greets on insmod and says goodbye on rmmod.  The "whom" parameter
 * exists so that modinfo has a parameter to list and so that the greeting
 * can be changed at load time:
 *
 *	insmod hello.ko whom=reader
 *
 * Its value stays readable in /sys/module/hello/parameters/whom while the
 * module is loaded.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>

static char *whom = "world";
module_param(whom, charp, 0444);
MODULE_PARM_DESC(whom, "Who to greet (default: world)");

static int __init hello_init(void)
{
	pr_info("Hello, %s! The module is loaded.\n", whom);
	return 0;
}

static void __exit hello_exit(void)
{
	pr_info("Goodbye, %s. The module is unloaded.\n", whom);
}

module_init(hello_init);
module_exit(hello_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Hello world: logs a greeting on load and unload");
