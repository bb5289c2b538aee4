// SPDX-License-Identifier: GPL-2.0
/*
 * broken_build.c - a test module that does not compile, on purpose.
 *
 * The statement in broken_build_init() lacks its semicolon, so gcc stops
 * with "broken_build.c:LINE:COL: error: ...".  tests/runner checks that
 * a build step shows that error and a non-zero exit status.
 */

#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static int __init broken_build_init(void)
{
	pr_info("broken_build: never built\n")
	return 0;
}

module_init(broken_build_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Test module: a deliberate syntax error");
