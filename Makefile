# Two entry points: `make demo` and `make test`. Everything else is their set-up.
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
WEB_STAMP := web/node_modules/.installed

.PHONY: demo test setup test-python test-web bench

setup: $(VENV_STAMP) $(WEB_STAMP)

$(VENV_STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

$(WEB_STAMP): web/package.json
	cd web && npm install --no-audit --no-fund
	touch $@

test: setup
	$(PY) -m pytest -q
