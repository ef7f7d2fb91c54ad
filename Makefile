# `make demo` and `make test` create .venv when it is missing and install everything.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1

.PHONY: demo test test-fast bench bench-peers browser lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# every kind's extra and the test tools, in one pip command (torch is pinned with
	# everything that depends on it); `pip install .` alone is the light core
	$(PY) -m pip install --quiet -e ".[all,test]"
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) examples/demo.py

test: $(STAMP) browser
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q --durations=15

# headless Chromium, which the report's layout test looks through (skipped with a
# message where it cannot be installed; that test then says it did not run)
browser:
	@command -v chromium >/dev/null || \
	  { command -v apt-get >/dev/null && DEBIAN_FRONTEND=noninteractive timeout 600 \
	    $$([ "$$(id -u)" = 0 ] || echo sudo) apt-get install -y -q chromium >/dev/null 2>&1; } || \
	  echo "chromium could not be installed: the report's browser test is skipped"

test-fast: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q -m "not slow"

# the peers bench/dispatch.py compares with, from the system's package manager (skipped
# with a message where they cannot be installed)
bench-peers:
	@command -v tsp >/dev/null && command -v parallel >/dev/null || \
	  { command -v apt-get >/dev/null && $$([ "$$(id -u)" = 0 ] || echo sudo) \
	    apt-get install -y -q task-spooler parallel >/dev/null; } || \
	  echo "task-spooler / GNU parallel could not be installed: the bench skips them"

bench: $(STAMP) bench-peers
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/dispatch.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/dispatch.py --jobs 2000 --sleep 0 --skip-old
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/startup.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/status_rows.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/recovery.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/sweep_overhead.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/tui_render.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/ddp_overhead.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/ddp_start.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/yolo_overhead.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/storage.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/snapshot.py

lint: $(STAMP)
	$(VENV)/bin/ruff check orchestrator trainers sweeps tests bench examples configs tools
	$(VENV)/bin/lint-imports
	# the code keeps to Python 3.10; every pin installs on 3.10, 3.12, 3.13 (asks the index)
	$(VENV)/bin/vermin --no-tips --violations -t=3.10- --eval-annotations \
	  orchestrator trainers sweeps tests bench examples tools
	$(PY) tools/check_wheels.py

clean:
	rm -rf demo .pytest_cache
