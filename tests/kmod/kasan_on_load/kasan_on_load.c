// SPDX-License-Identifier: GPL-2.0
/*
 * A test module whose init reads past a kmalloc() object or after kfree(),
 * on a kernel built with CONFIG_KASAN (tests/golden/debug.config); the
 * module is instrumented like the kernel it is built against.
 *
 * KASAN reports once per boot unless booted with kasan_multi_shot, so
 * report= picks one: "uaf" ("BUG: KASAN: use-after-free") or "oob" ("BUG:
 * KASAN: slab-out-of-bounds").  KASAN lets the read complete; the module
 * loads and the kernel carries on, tainted.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>
#include <linux/string.h>

#define SIZE 32

static char *report = "uaf";
module_param(report, charp, 0444);
MODULE_PARM_DESC(report, "uaf (use after free) or oob (out of bounds)");

static int __init kasan_on_load_init(void)
{
	char *obj = kmalloc(SIZE, GFP_KERNEL);
	char *p = obj;

	if (!obj)
		return -ENOMEM;
	OPTIMIZER_HIDE_VAR(p);	/* no compile-time bounds warning */
	if (!strcmp(report, "oob")) {
		pr_info("read 0x%x past the end\n", READ_ONCE(p[SIZE]));
		kfree(obj);
	} else {
		kfree(obj);
		pr_info("read 0x%x after kfree\n", READ_ONCE(p[0]));
	}
	return 0;
}

static void __exit kasan_on_load_exit(void)
{
}

module_init(kasan_on_load_init);
module_exit(kasan_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: KASAN reports on load");
