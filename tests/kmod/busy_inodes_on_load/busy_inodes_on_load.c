// SPDX-License-Identifier: GPL-2.0
/*
 * busy_inodes_on_load.c - a test module that registers a filesystem whose
 * superblock keeps an extra reference to its root inode.
 *
 * Unmounting it leaves that inode on the superblock's list, which
 * generic_shutdown_super() reports: "VFS: Busy inodes after unmount of
 * busyfs (busyfs)" on 6.1 and 6.12 (older kernels: "... of busyfs.
 * Self-destruct in 5 seconds.  Have a nice day...").  The report goes
 * through CHECK_DATA_CORRUPTION(), so Debian's BUG_ON_DATA_CORRUPTION
 * turns it into a BUG() that kills umount.  Loading does nothing else:
 *
 *	mount -t busyfs none DIR && umount DIR
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

#define BUSYFS_MAGIC 0x62757379	/* "busy" */

static int busyfs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	static const struct tree_descr no_files[] = { { "" } };
	int err;

	err = simple_fill_super(sb, BUSYFS_MAGIC, no_files);
	if (err)
		return err;
	/* The reference nobody drops: the inode outlives the unmount. */
	ihold(d_inode(sb->s_root));
	pr_info("mounted, root inode held\n");
	return 0;
}

static int busyfs_get_tree(struct fs_context *fc)
{
	return get_tree_nodev(fc, busyfs_fill_super);
}

static const struct fs_context_operations busyfs_context_ops = {
	.get_tree = busyfs_get_tree,
};

static int busyfs_init_fs_context(struct fs_context *fc)
{
	fc->ops = &busyfs_context_ops;
	return 0;
}

static struct file_system_type busyfs_type = {
	.owner = THIS_MODULE,
	.name = "busyfs",
	.init_fs_context = busyfs_init_fs_context,
	.kill_sb = kill_litter_super,
};

static int __init busy_inodes_on_load_init(void)
{
	return register_filesystem(&busyfs_type);
}

static void __exit busy_inodes_on_load_exit(void)
{
	unregister_filesystem(&busyfs_type);
}

module_init(busy_inodes_on_load_init);
module_exit(busy_inodes_on_load_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
MODULE_DESCRIPTION("Test module: busy inodes after unmount");
