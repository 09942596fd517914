# slipsnn: `make demo` and `make test` each work on a fresh clone (both depend on `setup`).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
RUN ?= runs/digits
# the first Python 3.10 that really runs: python3.10 on PATH (a pyenv shim may exist without working), else pyenv's
PYTHON310 := $(shell for p in "$$(command -v python3.10)" $$(ls -d "$$(pyenv root 2>/dev/null)"/versions/3.10*/bin/python 2>/dev/null | sort -rV); do \
	[ -n "$$p" ] && "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && echo "$$p" && break; done)

.PHONY: setup demo test test-fast clean fashion-mnist bench-methods

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON310)" ]; then echo "slipsnn needs Python 3.10 (lava-nc 0.10.0 does not import on 3.11): install it or put python3.10 on PATH"; exit 1; fi
	@echo "using $(PYTHON310)"
	test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,lava]'
	touch $@

demo: setup
	$(BIN)/slipsnn-train --dataset digits --activation slip --out $(RUN)
	$(BIN)/slipsnn-export $(RUN)/model.pt -o $(RUN)/model.net --timesteps 4
	$(BIN)/slipsnn-run $(RUN)/model.net --backend loihi_sim --timesteps 4 --limit 100 --verify --json $(RUN)/run.json
	$(BIN)/slipsnn chain $(RUN)/model.pt $(RUN)/model.net --timesteps 1 2 4 --backend loihi_sim
	$(BIN)/slipsnn-report $(RUN)/model.net --dataset digits --timesteps 1 2 4 --profile loihi2 --profile loihi --json $(RUN)/report.json --plots $(RUN)/plots

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not lava and not slow"

# Fashion-MNIST from Debian's package (the default root of the fashion-mnist data set); only the benchmark needs it
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
fashion-mnist:
	@test -f $(FASHION_MNIST) || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)

# SlipReLU vs QCFS/clip/ReLU on Fashion-MNIST, resumable: run again to continue (docs/benchmarks.md)
bench-methods: setup fashion-mnist
	nice -n 19 $(PY) benchmarks/methods.py $(ARGS)

clean:
	rm -rf $(RUN) .pytest_cache
