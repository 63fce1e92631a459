# Two entry points (README): `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU wheel first: a bare `torch` requirement would pull a multi-GB CUDA build. Off the provisioned machines,
# install it into the venv yourself first (python3.11 -m venv .venv && .venv/bin/pip install torch==2.13.0
# --index-url https://download.pytorch.org/whl/cpu): the step below then finds it installed and changes nothing.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/trapan demo --out demo-out

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/quality.py

clean:
	rm -rf $(VENV) demo-out
