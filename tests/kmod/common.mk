# SPDX-License-Identifier: GPL-2.0
#
# Shared by the test modules' Makefiles: an out-of-tree build of whatever the
# directory's Kbuild lists, against $(KDIR), by default the running
# kernel's (in the runner's build sandbox, the guest's).  Same rules as
# kmod/*/Makefile.

KDIR ?= /lib/modules/$(shell uname -r)/build

ifeq ($(shell command -v pahole 2>/dev/null),)
NO_BTF := CONFIG_DEBUG_INFO_BTF_MODULES=
endif

all:
	$(MAKE) -C $(KDIR) M=$(CURDIR) $(NO_BTF) modules

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean

.PHONY: all clean
