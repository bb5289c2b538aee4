// SPDX-License-Identifier: GPL-2.0
/*
 * bug_on_load.c - a test module whose init hits BUG_ON().
 *
 * BUG_ON() prints "kernel BUG at FILE:LINE!" and then an oops whose
 * header names the trap BUG() uses on x86 ("invalid opcode"), not
 * "Oops".  tests/runner keeps a real log of it so the kernel-log
 * signatures are checked against that wording.  insmod is killed; the
 * kernel carries on (Debian does not set panic_on_oops).
 */

#include <linux/bug.h>
#include <linux/init.h>
#include <linux/module.h>

static int limit = 1;
module_param(limit, int, 0444);
MODULE_PARM_DESC(limit, "BUG_ON() fires unless this is 0 (default: 1)");

static int __init bug_on_load_init(void)
{
	BUG_ON(limit);
	return 0;
}

module_init(bug_on_load_init);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: BUG_ON() on load");
