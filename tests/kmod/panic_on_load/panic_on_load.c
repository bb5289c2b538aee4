// SPDX-License-Identifier: GPL-2.0
/*
 * panic_on_load.c - a test module whose init panics the kernel.
 *
 * Used by tests/runner to capture a real "Kernel panic - not syncing"
 * and to check that the runner reports a guest that dies under a step.
 * Never load it anywhere but a throwaway VM.
 */

#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

static int __init panic_on_load_init(void)
{
	panic("panic_on_load: panicking on purpose");
	return 0;	/* not reached */
}

module_init(panic_on_load_init);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: panic() on load");
