# infomax: every target sources third_party/tfenv.sh, so cgo finds TensorFlow's
# C library from the wheel in .venv (or $TF_DIR).
SHELL := /bin/bash
CONFIG ?= configs/fashion_mnist.yaml
ENV := source third_party/tfenv.sh &&
PYTEST := .venv/bin/python -m pytest -q -p no:cacheprovider

.PHONY: setup export train test vet gotest pytest bench clean

## setup: .venv with the pinned TensorFlow, the C library link, Fashion-MNIST
setup:
	@bash third_party/setup.sh

## export: the SavedModel for $(CONFIG), when missing or stale
export: setup
	@$(ENV) go run ./runner export --config $(CONFIG)

## train: the README's main command: export if needed, then train $(CONFIG)
train: export
	@$(ENV) go run ./runner train --config $(CONFIG) $(ARGS)

## test: the README's test command: go vet, go test, pytest
test: setup vet gotest pytest

vet:
	@$(ENV) go vet ./...

gotest:
	@$(ENV) go test ./...

pytest:
	@TF_CPP_MIN_LOG_LEVEL=2 $(PYTEST) pyexport

clean:
	rm -rf exports runs third_party/tflib

## bench: speed and memory figures (prints them; asserts none)
bench: setup
	@$(ENV) go test -run '^$$' -bench . -benchtime 1x ./data ./eval ./runner
