# The two commands: `make run` and `make test`. Both set up what they need on first use.
PYTHON ?= python3
# make test runs the suite on this many processes (pytest-xdist; each has its own PostgreSQL)
TEST_WORKERS ?= auto
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint bench bench-smoke chaos clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

## run: embedded SQLite, sandbox channels, a demo organization, API on 127.0.0.1:8000
# Loopback is allowed for webhooks so a receiver on this machine works in the demo.
run: export OMNIRELAY_WEBHOOK_ALLOWED_NETWORKS ?= 127.0.0.0/8,::1/128
run: $(STAMP)
	$(BIN)/omnirelay migrate
	$(BIN)/omnirelay demo
	$(BIN)/omnirelay serve

## test: the whole suite, on SQLite and on a throwaway PostgreSQL the harness starts
test: $(STAMP)
	scripts/ensure-postgres.sh
	scripts/ensure-chromium.sh
	$(BIN)/pytest -q -n $(TEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## bench: the whole suite at full size, both engines, PostgreSQL with 1, 2 and 4 workers
## (hours on 2 cores, most of it the 1,000,000-message drain; figures: docs/performance.md);
## last, Kannel side by side (bench/kannel.py installs Debian's kannel and wrk if missing)
bench: $(STAMP)
	scripts/ensure-postgres.sh
	set -e; for db in sqlite postgresql; do \
		$(BIN)/python bench/send.py --db $$db; \
		$(BIN)/python bench/smpp.py --db $$db; \
		$(BIN)/python bench/webhooks.py --db $$db; \
		$(BIN)/python bench/backlog.py --db $$db; \
		$(BIN)/python bench/idle.py --db $$db; \
		$(BIN)/python bench/contacts.py --db $$db; \
		$(BIN)/python bench/fairness.py --db $$db; \
		$(BIN)/python bench/notifications.py --db $$db; \
		$(BIN)/python bench/channels.py --db $$db; \
	done
	set -e; for w in 1 2 4; do \
		$(BIN)/python bench/send.py --db postgresql --workers $$w; \
		$(BIN)/python bench/backlog.py --db postgresql --workers $$w; \
	done
	$(BIN)/python bench/backlog.py --db postgresql --workers 4 -n 1000000
	$(BIN)/python bench/kannel.py --db sqlite
	$(BIN)/python bench/kannel.py --db postgresql --workers 2

## chaos: the no-loss test, kill -9 under load (bench/chaos.py; a small one runs in CI)
chaos: $(STAMP)
	scripts/ensure-postgres.sh
	$(BIN)/python bench/chaos.py --db sqlite
	$(BIN)/python bench/chaos.py --db postgresql

bench-smoke: $(STAMP)
	scripts/ensure-postgres.sh
	@for b in bench/*.py; do [ -e "$$b" ] || continue; echo "== $$b"; $(BIN)/python $$b --smoke || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
