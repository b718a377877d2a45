# qwenops: two commands matter. `make demo` runs the main job on the embedded stack;
# `make test` installs everything the tests need and runs every tier.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NODE_OPTIONS_TEST ?=

.PHONY: help setup setup-demo build lint format typecheck demo dev test test-unit test-workflows \
        test-replay record-histories test-integration test-e2e test-python test-realmodel bench clean

help:
	@echo "make demo   - embedded stack: promote qwen/Qwen-7B-Chat end to end, then a canary that rolls back"
	@echo "make test   - install test servers (cached in .tools/) and run lint, typecheck and every test tier"
	@echo "make bench  - benchmarks, one 'name=value' line per figure"
	@echo "make dev    - start the embedded stack and keep it running (Temporal UI on :8233)"

setup:
	@bash scripts/setup.sh test

setup-demo:
	@bash scripts/setup.sh demo

build:
	@echo "[build] tsc"
	@npx tsc -p tsconfig.build.json

lint:
	@echo "[lint] biome"
	@npx biome check .
	@echo "[lint] layering boundaries"
	@node scripts/check-boundaries.mjs

format:
	@npx biome check --write .

typecheck:
	@echo "[typecheck] tsc --noEmit"
	@npx tsc -p tsconfig.json --noEmit

demo: setup-demo build
	@node dist/src/cli/main.js demo

dev: setup-demo build
	@node dist/src/cli/main.js dev

test-unit:
	@echo "[test] unit"
	@npx vitest run --project unit

test-workflows:
	@echo "[test] workflows (time-skipping server)"
	@npx vitest run --project workflows

test-replay:
	@echo "[test] replay (golden histories vs the current workflow code, negative control, dev server)"
	@npx vitest run --project replay

# Records test/fixtures/histories again (README, "Changing a workflow"); ONLY=<scenario,...> for some.
record-histories:
	@npx tsx scripts/record-histories.ts $(if $(ONLY),--only $(ONLY))

test-integration:
	@echo "[test] integration (dev server, MinIO, sandbox processes)"
	@npx vitest run --project integration

test-e2e:
	@echo "[test] e2e"
	@npx vitest run --project e2e

test-python:
	@echo "[test] python (jobs/, pytest against a real MinIO)"
	@cd jobs && ../.tools/jobs-venv/bin/python -m pytest -q

test-realmodel:
	@echo "[test] realmodel (tiny Qwen2 on vLLM for CPU, llm-compressor, transformers)"
	@bash scripts/run-realmodel-tests.sh

test: setup lint typecheck build
	@bash scripts/run-tests.sh

bench: setup build
	@node dist/bench/run.js

clean:
	rm -rf dist .qwenops
