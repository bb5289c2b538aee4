// SPDX-License-Identifier: GPL-2.0
/*
 * chardev.c - a character device that remembers how often it was opened.
 *
 * On load the module asks for a free major number and logs it together
 * with the mknod command that creates a node for it.  Every open()
 * prepares a one-line message that counts the earlier opens, read()
 * hands it out, write() is refused.  Only one process may hold the device
 * open at a time.
 *
 * This file builds two modules (see Kbuild):
 *
 *   chardev.ko        pins itself with try_module_get() while the device
 *                     is open, so rmmod fails with "in use" until the
 *                     last close.
 *   chardev_noref.ko  the same code compiled with CHARDEV_NO_REFCOUNT
 *                     (chardev_noref.c defines it and includes this
 *                     file).  Nothing stops rmmod while the device is
 *                     open; the next read() then calls into freed module
 *                     memory.  It exists to show that crash.
 */

/* Same prefix for both variants, so their logs read alike. */
#define pr_fmt(fmt) "chardev: " fmt

#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/uaccess.h>

#define DEVICE_NAME	"chardev"
#define MSG_SIZE	80

#ifdef CHARDEV_NO_REFCOUNT
#define PIN_MODULE	false	/* chardev_noref.ko: the broken variant */
#else
#define PIN_MODULE	true	/* chardev.ko: the well-behaved variant */
#endif

static int major;		/* assigned by register_chrdev() */
static bool device_open;	/* true while a process has us open */
static int times_opened;	/* opens before the current one */
static char msg[MSG_SIZE];	/* what read() hands out */
static size_t msg_len;

static int chardev_open(struct inode *inode, struct file *file)
{
	/*
	 * Test, then set, with no lock in between: two processes opening
	 * at the same moment can both see "false" and both get in.  Kept
	 * this simple on purpose; atomic_cmpxchg() on an atomic_t, or a
	 * mutex around both steps, would close that window.
	 */
	if (device_open)
		return -EBUSY;

	/*
	 * Hold a reference on this module for as long as the file is
	 * open, so that rmmod refuses to unload code that a later read()
	 * or close() still has to run.  It fails only while the module is
	 * already being unloaded.
	 */
	if (PIN_MODULE && !try_module_get(THIS_MODULE))
		return -ENODEV;

	device_open = true;
	msg_len = scnprintf(msg, sizeof(msg),
			    "I already told you %d times Hello world!\n",
			    times_opened);
	times_opened++;
	return 0;
}

static int chardev_release(struct inode *inode, struct file *file)
{
	device_open = false;

	if (PIN_MODULE)
		module_put(THIS_MODULE);
	return 0;
}

/*
 * buf is an address in the calling process, not in the kernel: it may be
 * unmapped, or point into kernel memory on purpose, so the kernel must not
 * dereference it.  put_user() checks the address and copies one byte, and
 * returns -EFAULT instead of oopsing if the page is not there.
 * copy_to_user() would do the whole message in one call; byte by byte
 * shows what happens underneath.
 */
static ssize_t chardev_read(struct file *file, char __user *buf,
			    size_t len, loff_t *ppos)
{
	ssize_t copied = 0;

	while (len && *ppos < msg_len) {
		if (put_user(msg[*ppos], buf + copied))
			return copied ? copied : -EFAULT;
		(*ppos)++;
		copied++;
		len--;
	}

	/* 0 once the whole message was read: end of file for cat. */
	return copied;
}

/*
 * Writing is not supported.  -EINVAL is what write(2) documents for a
 * file "attached to an object which is unsuitable for writing"; -EPERM
 * would suggest that someone with more privileges could write, and nobody
 * can.  The shell reports it as "Invalid argument".
 */
static ssize_t chardev_write(struct file *file, const char __user *buf,
			     size_t len, loff_t *ppos)
{
	pr_info("write of %zu bytes refused: this device is read-only\n", len);
	return -EINVAL;
}

/*
 * No ".owner = THIS_MODULE" here, on purpose.  With .owner set, the VFS
 * takes a reference on the module by itself on every open (fops_get()) and
 * drops it on the last close, so rmmod would refuse to unload even
 * chardev_noref.ko while the device is open, and the experiment of
 * unloading it under an open file and then calling read() could not be
 * done.  Leaving it out makes the explicit try_module_get()/module_put()
 * above the only thing that pins the module, so the two variants really
 * differ.  Real drivers set .owner and need neither call.
 */
static const struct file_operations chardev_fops = {
	.open = chardev_open,
	.release = chardev_release,
	.read = chardev_read,
	.write = chardev_write,
};

static int __init chardev_init(void)
{
	/* Major 0 asks the kernel to pick a free major number. */
	major = register_chrdev(0, DEVICE_NAME, &chardev_fops);
	if (major < 0) {
		pr_err("register_chrdev failed with %d\n", major);
		return major;
	}

	pr_info("got major %d, create the node with: mknod /dev/%s c %d 0\n",
		major, DEVICE_NAME, major);
	return 0;
}

static void __exit chardev_exit(void)
{
	unregister_chrdev(major, DEVICE_NAME);
	pr_info("unregistered major %d\n", major);
}

module_init(chardev_init);
module_exit(chardev_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The kblog authors");
#ifdef CHARDEV_NO_REFCOUNT
MODULE_DESCRIPTION("Counting chardev without module refcounting (unsafe)");
#else
MODULE_DESCRIPTION("Read-only character device that counts its opens");
#endif
