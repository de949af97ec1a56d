# packetlab — the commands in the README. Everything runs as root (labs create
# namespaces and load BPF); `make` re-runs itself with sudo when needed.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
SUDO  := $(if $(filter 0,$(shell id -u)),,sudo)
PYTEST_ARGS ?=
JUPYTER_PORT ?= 8888
DOCS_PORT ?= 8000
# inside the Vagrant VM use DOCS_ADDR=0.0.0.0: Vagrant's forwarded port (host 127.0.0.1 only) arrives on the VM's NAT address
DOCS_ADDR ?= 127.0.0.1

.PHONY: help provision lab lint test test-unit test-toolkit test-labs test-vm test-kernel61 docs docs-build clean doctor bench

help:
	@echo "make lab    - provision if needed, then JupyterLab on labs/ (port $(JUPYTER_PORT))"
	@echo "make test   - provision if needed, then every test, every lab notebook (nbval, and Run All in JupyterLab in Chromium) and the docs build"
	@echo "make test-unit - the pure-logic tests (tests/unit): no root, no kernel; as root they run as nobody"
	@echo "make lint   - ruff (lint, format), mypy and lint-imports (the layers of modules/architecture.md); make test runs it first"
	@echo "make docs   - serve the course site (mkdocs, port $(DOCS_PORT))"
	@echo "make clean  - remove leftovers of crashed labs (only what packetlab recorded)"
	@echo "make doctor - check kernel, capabilities, headers and tools"
	@echo "make test-vm [TESTS='tests/kernel/x.py -k y'] - developers: doctor + tests in the running Vagrant VM (Debian 12's 6.1 kernel)"
	@echo "make test-kernel61 [TESTS='tests/kernel labs/07-xdp.ipynb'] - developers: doctor + tests file by file under Debian 12's 6.1 kernel in qemu, no Vagrant (hours)"

provision:
	$(SUDO) bash vagrant/provision.sh $(PROVISION_ARGS)

doctor: provision
	$(SUDO) $(VENV)/bin/packetlab doctor

lab: provision
	cd labs && $(SUDO) ../$(VENV)/bin/jupyter lab --allow-root --no-browser --ip=127.0.0.1 --port=$(JUPYTER_PORT) \
	    --ServerApp.root_dir=$(CURDIR)/labs

# tests/unit must pass without root: run as root, make drops to nobody to prove it (when nobody can read
# this tree; otherwise it says so and runs them as root)
NOBODY = setpriv --reuid=65534 --regid=65534 --clear-groups
AS_USER = $(if $(filter 0,$(shell id -u)),$(if $(shell $(NOBODY) test -r $(CURDIR)/pyproject.toml -a -x $(CURDIR)/$(PY) && echo y),$(NOBODY) env HOME=/tmp PYTHONDONTWRITEBYTECODE=1 HYPOTHESIS_STORAGE_DIRECTORY=/tmp/packetlab-unit-hypothesis,$(warning nobody cannot read $(CURDIR): tests/unit run as root)),)

# style, types and the layer contract (config in pyproject.toml): seconds, so `make test` fails fast on them.
# Caches live per user (a root `make test` must not leave root-owned caches in the checkout).
LINT_CACHE = $${XDG_CACHE_HOME:-$$HOME/.cache}/packetlab
lint: PROVISION_ARGS = --with-test-tools
lint: provision
	RUFF_CACHE_DIR=$(LINT_CACHE)/ruff $(VENV)/bin/ruff check packetlab tests labs
	RUFF_CACHE_DIR=$(LINT_CACHE)/ruff $(VENV)/bin/ruff format --check packetlab tests labs
	MYPY_CACHE_DIR=$(LINT_CACHE)/mypy $(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo --cache-dir $(LINT_CACHE)/import-linter

test: PROVISION_ARGS = --with-test-tools
test: provision lint
	$(SUDO) $(VENV)/bin/packetlab doctor
	$(AS_USER) $(PY) -m pytest tests/unit -p no:cacheprovider
	VAGRANT_CHECKPOINT_DISABLE=1 vagrant validate --ignore-provider
	PACKETLAB_BOX=bento/ubuntu-24.04 PACKETLAB_LIBVIRT_DRIVER=qemu VAGRANT_CHECKPOINT_DISABLE=1 vagrant validate --ignore-provider
	$(SUDO) $(PY) -m pytest -p packetlab.testing.host_guard tests/kernel tests/browser labs --nbval-lax --nbval-current-env \
	    --nbval-cell-timeout=600 -p no:cacheprovider --ignore=tests/browser/test_docs_site.py $(PYTEST_ARGS)
	@# the docs site, built after pytest so lab pages show this run's outputs (build/executed/), then opened
	@# page by page in Chromium: nothing fetched from outside, diagrams drawn, search, lesson -> lab links
	$(SUDO) env NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir $(CURDIR)/build/site
	$(SUDO) env PACKETLAB_DOCS_SITE=$(CURDIR)/build/site $(PY) -m pytest tests/browser/test_docs_site.py -p no:cacheprovider

test-unit: provision
	$(AS_USER) $(PY) -m pytest tests/unit -p no:cacheprovider $(PYTEST_ARGS)

test-toolkit: provision
	$(SUDO) $(PY) -m pytest -p packetlab.testing.host_guard tests/unit tests/kernel $(PYTEST_ARGS)

test-labs: provision
	$(SUDO) $(PY) -m pytest -p packetlab.testing.host_guard labs --nbval-lax --nbval-current-env --nbval-cell-timeout=600 $(PYTEST_ARGS)

# developers only, not part of `make test`: the tree on the kernel `vagrant up` gives (needs a running VM)
test-vm:
	bash vagrant/run-in-vm.sh $(TESTS)

# developers only: the tree's committed HEAD under Debian 12's 6.1 kernel in qemu without KVM (hours), file by file
test-kernel61: provision
	$(SUDO) bash vagrant/kernel61.sh $(TESTS)

docs: provision
	$(VENV)/bin/mkdocs serve --dev-addr $(DOCS_ADDR):$(DOCS_PORT)

docs-build: provision
	$(VENV)/bin/mkdocs build --strict --site-dir site

bench: provision
	$(SUDO) $(PY) -m packetlab.bench $(NAME)

clean:
	@if [ -x $(VENV)/bin/packetlab ]; then $(SUDO) $(VENV)/bin/packetlab clean; else echo "nothing provisioned"; fi
