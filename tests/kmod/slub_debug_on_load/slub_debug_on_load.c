// SPDX-License-Identifier: GPL-2.0
/*
 * slub_debug_on_load.c - a test module whose init corrupts a slab cache
 * that SLUB checks, then frees an object twice.
 *
 * Debian's kernels have CONFIG_SLUB_DEBUG but boot without slub_debug=,
 * so the kmalloc caches go unchecked.  A cache created with the debug
 * flags is checked all the same, whatever the command line says.  Init
 * writes into a freed object, whose poison the next allocation finds
 * spoilt ("BUG NAME (TAINT): Poison overwritten"; 6.12 says "Object
 * corrupt"), then frees another object twice ("Object already free").
 * SLUB refuses the bad operations and carries on.  The cache stays, as
 * its checks marked a slab in use for good: destroying it would only
 * report the objects left behind.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>

#define OBJECT_SIZE 64

static struct kmem_cache *cache;

static int __init slub_debug_on_load_init(void)
{
	char *obj, *other;

	cache = kmem_cache_create("slub_debug_on_load", OBJECT_SIZE, 0,
				  SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE |
				  SLAB_POISON | SLAB_STORE_USER, NULL);
	if (!cache)
		return -ENOMEM;

	obj = kmem_cache_alloc(cache, GFP_KERNEL);
	if (!obj)
		goto nomem;
	kmem_cache_free(cache, obj);
	pr_info("writing into a freed object\n");
	WRITE_ONCE(obj[0], 0x2a);

	/*
	 * The freed object heads its slab's free list: this allocation
	 * checks it, finds the poison spoilt and takes an object from a new
	 * slab instead.  A second object keeps that slab's count of objects
	 * in use above one, so that the second free of the first object is
	 * caught by the free-list check, not by the count.
	 */
	obj = kmem_cache_alloc(cache, GFP_KERNEL);
	other = kmem_cache_alloc(cache, GFP_KERNEL);
	if (!obj || !other)
		return -ENOMEM;	/* the cache is spoilt: keep it, as below */
	pr_info("freeing an object twice\n");
	kmem_cache_free(cache, obj);
	kmem_cache_free(cache, obj);
	pr_info("done\n");
	return 0;

nomem:
	kmem_cache_destroy(cache);
	return -ENOMEM;
}

static void __exit slub_debug_on_load_exit(void)
{
}

module_init(slub_debug_on_load_init);
module_exit(slub_debug_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: SLUB debug reports on load");
