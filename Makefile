# Two entry points: `make demo` and `make test`. Everything else is their set-up.
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
WEB_STAMP := web/node_modules/.installed

.PHONY: demo test setup test-python test-web chromium bench

setup: $(VENV_STAMP) $(WEB_STAMP)

$(VENV_STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,notebook]"
	touch $@

$(WEB_STAMP): web/package.json
	cd web && npm install --no-audit --no-fund
	touch $@

# A tiny random Qwen3-VL on the CPU writes output/demo, then the viewer serves output/.
demo: setup
	$(PY) -m vlm_attention_viz demo --output-dir output/demo
	cd web && npm run dev

test: test-python test-web

# The formatter and linter run first: a house style that CI keeps.
test-python: $(VENV_STAMP)
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .
	$(PY) -m pytest -q

# Unit, data-server and browser tests (real Chromium); the browser tests extract
# samples with the venv's Python, so they need both set-ups.
test-web: $(VENV_STAMP) $(WEB_STAMP) chromium
	cd web && npm test

# The browser tests drive Debian's chromium; as root it is installed here, otherwise one line says how.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || { echo "make test needs chromium for the browser tests: sudo apt-get install chromium" >&2; exit 1; }

# Extraction and import memory and speed figures for BENCHMARKS.md (scripts, not tests).
bench: $(VENV_STAMP)
	$(PY) benchmarks/extract_memory.py
	$(PY) benchmarks/import_memory.py
