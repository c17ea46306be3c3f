# The two commands of the README: `make run` and `make test` do all set-up themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS   ?=

.PHONY: install rules readme dashboards screenshots bench-deps system-deps run test lint bench bench-cycle bench-topology bench-forecast forecast-quality breach-lead clean soak scrape-load attacks evaluate bench-exposition

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# A pinned CPU build of torch; an open range would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(STAMP)

# Real Prometheus, VictoriaMetrics, Alertmanager and Chromium for the tests (Debian packages), installed only
# when missing.
system-deps:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null && command -v amtool >/dev/null && \
	 command -v victoria-metrics >/dev/null && command -v chromium >/dev/null || \
	  ($(SUDO) apt-get update -q && \
	   DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q prometheus prometheus-alertmanager \
	     victoria-metrics chromium)

run: install
	$(BIN)/aura-exporter demo $(ARGS)

test: install system-deps lint
	$(BIN)/python -m pytest $(ARGS)

lint: install
	$(BIN)/ruff check aura_exporter tests bench
	$(BIN)/mypy aura_exporter
	$(BIN)/lint-imports --no-cache  # the layering contract of pyproject.toml

# Heavy runs: scripts that print figures, never part of `make test`.
bench: bench-topology bench-forecast bench-exposition bench-cycle

bench-topology: install
	$(BIN)/python bench/topology_cycle.py $(ARGS)

bench-forecast: install
	$(BIN)/python bench/forecast_speed.py $(ARGS)

bench-exposition: install
	$(BIN)/python bench/exposition_speed.py $(ARGS)

# One full cycle, stage by stage, for 1000 and 10,000 entities (docs/benchmarks.md); several minutes.
bench-cycle: install
	$(BIN)/python bench/full_cycle.py $(ARGS)

# Regenerate rules/ from aura_exporter/mixin/ (a test fails when the committed YAML differs).
rules: install
	$(BIN)/python -m aura_exporter.mixin rules

# The README's screenshots of the built-in UI (docs/img/ui-*.png); needs Debian chromium.
screenshots: install
	$(BIN)/python bench/ui_screenshots.py

# The README's configuration reference, from the settings' declarations (a test fails when they differ).
readme: install
	$(BIN)/python -m aura_exporter.config.reference --write README.md

# Regenerate dashboards/ (Grafana JSON) the same way.
dashboards: install
	$(BIN)/python -m aura_exporter.mixin dashboards

bench-deps: install
	$(BIN)/pip install -q -e '.[bench]'

forecast-quality: bench-deps
	$(BIN)/python bench/forecast_quality.py $(ARGS)

breach-lead: bench-deps
	$(BIN)/python bench/breach_lead.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# Reliability runs (docs/reliability.md): memory across a 30-minute soak; /metrics under 20 scrapers, then
# scraped by a real Prometheus at 2,000 and 10,000 hosts (about 20 minutes).
soak: bench-deps
	$(BIN)/python bench/soak.py $(ARGS)

scrape-load: install
	$(BIN)/python bench/scrape_load.py $(ARGS)

# Attacks on the HTTP surface (loopback, bounded): wrong-password floods and clients that never read,
# against the demo behind basic auth; prints the table of docs/reliability.md's "Attacks".
attacks: install
	$(BIN)/python bench/attacks.py $(ARGS)

# The evaluations: NAB (docs/evaluation.md, docs/evaluation.json: AURA against the null detector and a
# PromQL adaptive band on ../shared/data/nab; outputs under results/nab/), then the SMD fleet
# (docs/evaluation-smd.md: AURA against max |z| and the band, event-wise; outputs under results/smd/).
evaluate: bench-deps
	$(BIN)/python bench/nab_evaluation.py $(ARGS)
	$(BIN)/python bench/smd_evaluation.py $(ARGS)
