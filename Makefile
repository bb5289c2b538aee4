# Bootstrap only: install what the host needs, make the venv, then hand over to tasks.py.
# Every target is safe to run twice; the stamp files make the second run do no work.
#
# Each command installs its own set (runner/host-packages.txt, SETS in
# runner/host_packages.py): `make html` what building the site and running its
# posts needs, `make test` that and what only the tests use (Chromium, the Docker
# engine, git for publishing, pytest and friends in the venv). One stamp
# per set, so `make test` after `make html` installs only what the tests add.

PYTHON ?= python3
VENV := .venv
HOST_INPUTS := runner/host-packages.txt runner/host_packages.py runner/install-host-packages.sh
# What `pip install -e` takes for each set: the site alone, or with the test extras.
PIP_TARGET_html := .
PIP_TARGET_test := .[test]

.PHONY: html test clean

html: $(VENV)/.installed-html build/.node-modules-html
	$(VENV)/bin/invoke build

test: $(VENV)/.installed-test build/.node-modules-test
	$(VENV)/bin/invoke test

clean:
	$(VENV)/bin/invoke clean

build/.host-packages-html build/.host-packages-test: build/.host-packages-%: $(HOST_INPUTS)
	sh runner/install-host-packages.sh $*
	@mkdir -p $(dir $@) && touch $@

# The browser side (package.json: the replay player the build copies into the site),
# exactly as package-lock.json says; no install scripts run. The stamp is kept in
# build/: npm ci empties node_modules/ first.
build/.node-modules-html build/.node-modules-test: build/.node-modules-%: package.json package-lock.json build/.host-packages-%
	npm ci --ignore-scripts --no-audit --no-fund
	@mkdir -p $(dir $@) && touch $@

$(VENV)/.installed-html $(VENV)/.installed-test: $(VENV)/.installed-%: pyproject.toml build/.host-packages-%
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '$(PIP_TARGET_$*)'
	@touch $@
