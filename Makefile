# Two commands set everything up on a fresh machine:
#   make demo   creates .venv if needed, installs, runs configs/demo.yaml
#   make test   creates .venv if needed, installs, runs the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint browser clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch and torchvision are pinned for this set-up (pip takes them from the machine's disk);
	# the package itself accepts wider ranges.
	$(BIN)/pip install --disable-pip-version-check -q "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --disable-pip-version-check -q --no-build-isolation -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/xai run configs/demo.yaml
	@echo "Figures: outputs/demo/figures (side by side: outputs/demo/figures/grid.png)"

# The report test drives Debian's chromium headless; install it when we can (root, apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium not installed: the headless report test will be skipped"; }

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# Layer contracts (pyproject.toml [tool.importlinter]) and ruff; .ci/run checks the contracts too.
lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check xai_core plugins tests benchmarks

clean-venv:
	rm -rf $(VENV)
