// SPDX-License-Identifier: GPL-2.0
/*
 * chardev_noref.c - chardev.c without try_module_get()/module_put().
 *
 * Builds chardev_noref.ko from the very same source as chardev.ko; the
 * only difference is the macro below.  Do not use this one outside the
 * rmmod-while-open experiment: it lets the module be unloaded under an
 * open file.
 */

#define CHARDEV_NO_REFCOUNT
#include "chardev.c"
