# Everything runs inside .venv; `make run` and `make test` create it on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= conf/switch.toml

.PHONY: run test lint bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,lint]'
	touch $(STAMP)

run: $(STAMP)
	exec ./scripts/run.sh $(CONFIG)

test: $(STAMP)
	@./scripts/ensure-promtool.sh
	$(PY) -m pytest -q

# Benchmarks (a few minutes on 2 cores): codecs, the simulators' data set, the audit log if
# present, then the whole switch end to end (bench/README.md says what each number means).
bench: $(STAMP)
	$(PY) bench/bench_codecs.py --seconds 0.5
	$(PY) bench/bench_sim_data.py --persons 20000
	@if [ -f bench/bench_audit.py ]; then echo "$(PY) bench/bench_audit.py"; $(PY) bench/bench_audit.py; fi
	$(PY) bench/bench_inquiries.py
	$(PY) bench/bench_teletype.py

lint: $(STAMP)
	$(VENV)/bin/ruff check switch simulators tests bench
	$(VENV)/bin/mypy --strict switch

clean:
	rm -rf $(VENV) var build dist *.egg-info
