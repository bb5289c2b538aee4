// SPDX-License-Identifier: GPL-2.0
/*
 * warn_on_load.c - a test module whose init prints a kernel WARNING.
 *
 * Used by tests/runner to capture a real "WARNING: CPU: N PID: N at ..."
 * splat from the guest.  The warning is the only effect: init still
 * returns 0, the module stays loaded and rmmod works.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bug.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static int answer = 42;
module_param(answer, int, 0444);
MODULE_PARM_DESC(answer, "Warns unless this is 0 (default: 42)");

static int __init warn_on_load_init(void)
{
	WARN(answer, "warn_on_load: answer is %d, expected 0\n", answer);
	pr_info("loaded despite the warning\n");
	return 0;
}

static void __exit warn_on_load_exit(void)
{
	pr_info("unloaded\n");
}

module_init(warn_on_load_init);
module_exit(warn_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: WARN() on load, then carry on");
