# Two commands set everything up on a fresh machine:
#   make demo   creates .venv if needed, installs, runs configs/demo.yaml
#   make test   creates .venv if needed, installs, runs the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-quick test-one-thread lint browser clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch and torchvision are pinned for this set-up (pip takes them from the machine's disk);
	# the package itself accepts wider ranges.
	$(BIN)/pip install --disable-pip-version-check -q "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --disable-pip-version-check -q --no-build-isolation -e ".[test]"
	# The trackers the sink tests read back, apart: see the `test` extra in pyproject.toml.
	$(BIN)/pip install --disable-pip-version-check -q --no-build-isolation -e ".[trackers]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/xai run configs/demo.yaml
	@echo "Report: outputs/demo/report.html (side by side: outputs/demo/figures/grid.png; a figure per map: xai report outputs/demo figures=true)"

# The report test drives Debian's chromium headless; install it when we can (root, apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium not installed: the headless report test will be skipped"; }

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# Everything but the tests marked slow (each over about 5 s): under 2 minutes on 2 cores.
test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The equivalence tests (ours against Captum, pytorch-grad-cam, zennit, Quantus; batched against
# per-image) again on one thread: float32 sums run in another order, and their tolerances must
# hold for it (tests/numerics.py). CI runs this after `make test` (two threads).
EQUIVALENCE := tests/contracts/test_numerics.py tests/plugins/gradients/test_saliency.py \
	tests/plugins/gradients/test_gradients.py tests/plugins/cam/test_cam.py \
	tests/plugins/deeplift/test_deeplift.py tests/plugins/lrp/test_lrp.py \
	tests/plugins/attention/test_attention.py tests/plugins/perturbation/test_perturbation.py \
	tests/plugins/surrogate/test_surrogate.py tests/plugins/metrics/test_quantus.py \
	tests/families/test_forward_pass.py tests/families/test_fusion.py \
	tests/plugins/targets/test_target_kinds.py tests/models/test_huggingface.py
test-one-thread: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow" $(EQUIVALENCE)

# Layer and no-cycle contracts (pyproject.toml [tool.importlinter]) and ruff (C901: complexity at
# most 10 in xai_core, plugins, tests, benchmarks and scripts); .ci/run runs it first.
lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check xai_core plugins tests benchmarks scripts

clean-venv:
	rm -rf $(VENV)
