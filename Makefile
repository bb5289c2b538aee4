# Bootstrap only: install what the host needs, make the venv, then hand over to tasks.py.
# Every target is safe to run twice; the stamp files make the second run do no work.

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
HOST_STAMP := build/.host-packages

.PHONY: html test clean

html: $(STAMP)
	$(VENV)/bin/invoke build

test: $(STAMP)
	$(VENV)/bin/invoke test

clean:
	$(VENV)/bin/invoke clean

$(HOST_STAMP): runner/host-packages.txt runner/host_packages.py runner/install-host-packages.sh
	sh runner/install-host-packages.sh
	@mkdir -p $(dir $@) && touch $@

$(STAMP): pyproject.toml $(HOST_STAMP)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	@touch $@
