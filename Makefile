# `make demo` and `make test` create .venv on first use and install the project into it.
# TORCH_REQ picks the PyTorch build: users get the usual PyPI build; CI and CPU-only machines
# can pin the CPU wheel, e.g. `make test TORCH_REQ=torch==2.13.0`.
PYTHON ?= python3
VENV ?= .venv
TORCH_REQ ?= torch>=2.2
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint docs clean-demo

$(STAMP): pyproject.toml requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install "$(TORCH_REQ)"
	$(PY) -m pip install -e ".[test,onnx,openvino,lint,heif,tiff-exif,raw,serve,browser-test,wandb,video,docs]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests -q
	$(PY) -m pytest lptn --doctest-modules -q

# Lint, format and type checks (ruff, mypy on lptn/ as [tool.mypy] says); CI runs them before
# the tests.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# The documentation site (mkdocs.yml, docs/) into site/; --strict fails on broken links and
# missing pages.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

demo: $(STAMP)
	$(PY) scripts/demo.py

clean-demo:
	rm -rf datasets/demo experiments/LPTN_demo* results/LPTN_demo* tb_logger/LPTN_demo*
