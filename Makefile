# herd: the two commands a fresh Debian/Ubuntu with Python 3.11+ needs.
#   make quickstart   set up .venv, then a first tour with the herd CLI (scripts/quickstart.sh)
#   make test         set up .venv and the test services, run pytest (scripts/test.sh)
#   make bench        set up .venv, run the benchmarks: one table, JSON in bench/results/ (bench/README.md)
#   make images       build the compose stack's images offline, cached (compose/build-images.sh)
# Knobs: PYTHON=python3.12, E2E=0 (leave out the compose e2e tests), PYTEST_ARGS='-k name -x'.

SHELL := /bin/bash
PYTHON ?=
E2E ?=
PYTEST_ARGS ?=
export PYTHON E2E PYTEST_ARGS

.PHONY: help venv test quickstart bench images

help:
	@sed -n '2,6p' Makefile | sed 's/^# *//'

venv:
	@bash scripts/venv.sh

test: venv
	@bash scripts/test.sh

quickstart: venv
	@bash scripts/quickstart.sh

bench: venv
	@.venv/bin/python bench/run.py

images: venv
	@bash compose/build-images.sh
