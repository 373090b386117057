# One command each: `make demo` (install, then segment the bundled sample) and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# The exact CPU build of PyTorch (pyproject keeps a loose range; a bare `torch` would pull a CUDA build).
TORCH_PIN ?= torch==2.13.0

.PHONY: install demo test lint clean

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -e ".[train,deploy,serve,cluster,dev]" "$(TORCH_PIN)"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/m2unet segment examples/chase_db1_Image_11L.jpg -o demo-output

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) demo-output .pytest_cache
