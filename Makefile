# The two commands a new user needs: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
export UV_LINK_MODE ?= copy

.PHONY: run test test-fast bench simulate simulate-long install lint schemas docs clean messages

$(UV):
	@echo "uv not found: installing it for this user (https://docs.astral.sh/uv/)"
	python3 -m pip install --user --quiet uv || curl -LsSf https://astral.sh/uv/install.sh | sh

install: $(UV)
	$(UV) sync --frozen

## run: the embedded broker, the four services and the web cabinet (http://127.0.0.1:8090), with prefixed logs; Ctrl-C stops them
run: install
	$(UV) run billing up

## test: the whole test suite over a real broker and real databases
test: install
	$(UV) run pytest

## test-fast: the tests that need no broker, no PostgreSQL and no install (about a minute)
test-fast: install
	$(UV) run pytest -m "not infrastructure and not slow"

## bench: the benchmarks of bench/ (add ARGS=--quick for a smoke run)
bench: install
	$(UV) run python -m bench $(ARGS)

## simulate: the seeded simulation of the whole suite against its model, CI's budget (docs/architecture.md)
simulate: install
	$(UV) run python -m simulation --ci $(ARGS)
	$(UV) run python -m simulation --ci --database postgresql $(ARGS)

## simulate-long: seeds one after another for DURATION seconds; reports seeds, steps, faults, failures
DURATION ?= 3600
simulate-long: install
	$(UV) run python -m simulation --seeds 1000 --duration $(DURATION) --steps 200 $(ARGS)

## schemas: regenerate the JSON Schemas, the AsyncAPI document and docs/events.md
schemas: install
	$(UV) run python -m billing_events.docs

## messages: the cabinet's catalogs (Slovak, Russian) updated with its templates' messages; translate the new ones
messages: install
	mkdir -p var
	$(UV) run pybabel extract -F cabinet/babel.cfg --no-location --omit-header -o var/cabinet-messages.pot cabinet/src/billing_cabinet
	$(UV) run pybabel update --no-fuzzy-matching --width 100 -i var/cabinet-messages.pot -d cabinet/src/billing_cabinet/locales

clean:
	rm -rf var .pytest_cache
