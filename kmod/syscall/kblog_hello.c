// SPDX-License-Identifier: GPL-2.0
/*
 * kblog_hello.c - call the kblog_hello system call from user space.
 *
 *   kblog_hello NAME
 *
 * asks the kernel to greet NAME in its log and prints what the call
 * returned: the length of NAME.  On failure it prints the error, as
 * strerror() words it, and exits with status 1.
 *
 * The C library has a wrapper function for each system call it knows,
 * read() for read and so on.  It cannot know kblog_hello: the call
 * exists only in a kernel built with this episode's patch.  syscall(2)
 * is the generic way in: it takes the number and the arguments, makes
 * the call, and reports a failure the usual way, -1 and errno.
 *
 * The number is not written here: each kernel series' patch gives the
 * call the first free number of that tree's table (451 on 6.1, 463 on
 * 6.12).  The patched kernel's own headers for user space say which,
 * as __NR_kblog_hello, so build against them:
 *
 *   make O=~/build headers_install   (in the patched source tree)
 *   gcc -Wall -I ~/build/usr/include -o kblog_hello kblog_hello.c
 */
#define _GNU_SOURCE		/* for syscall() in <unistd.h> */
#include <asm/unistd.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef __NR_kblog_hello
#error "no __NR_kblog_hello: build with -I to the patched kernel's installed headers"
#endif

int main(int argc, char *argv[])
{
	long ret;

	if (argc != 2) {
		fprintf(stderr, "usage: kblog_hello NAME\n");
		return 2;
	}

	ret = syscall(__NR_kblog_hello, argv[1]);
	if (ret < 0) {
		fprintf(stderr, "kblog_hello: %s\n", strerror(errno));
		return 1;
	}

	printf("%ld\n", ret);
	return 0;
}
