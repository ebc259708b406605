# hasf — see README.md.  `make test` and `make demo` do all their own set-up.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
VPY := $(VENV)/bin/python
# Debian's own interpreter, as on cluster nodes (and runnable by `nobody`, which ocf-tester uses).
BASE_PYTHON ?= /usr/bin/python3
# Install layout (make install DESTDIR=D PYTHON=P); RPM distros pass STONITH_PLUGIN_DIR=/usr/lib64/...
DESTDIR ?=
PYTHON ?= $(VPY)
OCF_ROOT ?= /usr/lib/ocf
SBINDIR ?= /usr/sbin
BINDIR ?= /usr/bin
STONITH_PLUGIN_DIR ?= /usr/lib/stonith/plugins/external
INSTALL_FLAGS ?=
PYTEST_ARGS ?=
# make crash-test CYCLES=N REPORT=FILE.json FENCE=ipmi (lab/crashtest.py)
CYCLES ?= 1
REPORT ?= crash-test.json
FENCE ?= ipmi

.PHONY: all deps venv install lint test test-fast bench demo crash-test fresh-ci clean

all: venv

# System packages (Debian): only what is missing, so a re-run is quick and harmless.
deps:
	@missing=""; for pkg in $$(grep -v '^#' packaging/debian-packages.txt); do \
	  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/.stamp: setup.cfg pyproject.toml
	$(BASE_PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip setuptools
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

venv: deps $(VENV)/.stamp

install:
	$(if $(PYTHON),,$(error PYTHON= must name the interpreter for the launchers))
	$(BASE_PYTHON) packaging/install.py --destdir '$(DESTDIR)' --python '$(PYTHON)' --ocf-root '$(OCF_ROOT)' \
	  --sbindir '$(SBINDIR)' --bindir '$(BINDIR)' --stonith-plugin-dir '$(STONITH_PLUGIN_DIR)' $(INSTALL_FLAGS)

lint: venv
	$(VENV)/bin/ruff check hasf agents stonith cib ocfs2_membership tests bench packaging lab
	$(VENV)/bin/vermin --no-tips --violations -t=3.9- --backport dataclasses hasf agents stonith cib ocfs2_membership packaging

test: venv lint
	$(VPY) -m pytest -ra --durations=15 $(PYTEST_ARGS)

# The fast tier (tests/conftest.py FAST_MODULES): no guests, no Pacemaker daemons, no
# libvirtd.  For iterating, and what the RPM's %check runs.  `make test` is the whole suite.
test-fast: venv
	$(VPY) -m pytest -q -m fast --durations=5 $(PYTEST_ARGS)

bench: venv
	$(VPY) bench/run.py

demo: venv
	$(VPY) -m lab.demo

crash-test: venv
	$(VPY) -m lab.crashtest --cycles '$(CYCLES)' --report '$(REPORT)' --fence '$(FENCE)'

# .ci/run on a brand-new minimal Debian 12 root (mmdebstrap + pivot_root): catches missing install steps.
fresh-ci:
	.ci/fresh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
