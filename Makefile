# infomax. `make setup` installs TensorFlow's C library where cgo looks by
# default (third_party/libtensorflow.sh), so plain `go build`, `go run ./runner`
# and `go test ./...` work in any shell; the targets below also source
# third_party/tfenv.sh, which covers a setup that could not install it (no
# root) and TF_DIR (an official libtensorflow build).
SHELL := /bin/bash
CONFIG ?= configs/fashion_mnist.yaml
TF_BUILD ?= cpu
ENV := source third_party/tfenv.sh &&
PYTEST := .venv/bin/python -m pytest -q -p no:cacheprovider

.PHONY: setup uninstall export train test vet gotest race pytest bench profile fuzz embed-worker clean

## setup: .venv with the pinned TensorFlow (TF_BUILD=gpu: the GPU wheel), its C library under /usr/local, Fashion-MNIST
setup:
	@TF_BUILD=$(TF_BUILD) bash third_party/setup.sh

## uninstall: remove what setup put outside the project (TensorFlow's C library and headers under /usr/local)
uninstall:
	@bash third_party/libtensorflow.sh uninstall

## export: the SavedModel for $(CONFIG), when missing or stale
export: setup
	@$(ENV) go run ./runner export --config $(CONFIG)

## train: the README's main command: train $(CONFIG) (exporting it first if needed)
train: setup
	@$(ENV) go run ./runner train --config $(CONFIG) $(ARGS)

## test: the README's test command: go vet, go test, the encoder's concurrency under -race, pytest
test: setup vet gotest race pytest

vet:
	@$(ENV) go vet ./...

gotest:
	@$(ENV) go test -timeout 30m ./...

race:
	@$(ENV) go test -race -count=1 -run 'TestConcurrentUse|TestBadCallsAreErrors' ./encoder

pytest:
	@TF_CPP_MIN_LOG_LEVEL=2 $(PYTEST) pyexport

clean:
	rm -rf exports runs third_party/tflib

## bench: speed and memory figures (prints them; asserts none)
bench: setup
	@$(ENV) go test -run '^$$' -bench . -benchtime 1x -timeout 120m ./data ./eval ./graph ./train ./runner
	@# The search as the runner runs it: oneDNN's kernels on (package tfonednn).
	@$(ENV) TF_ENABLE_ONEDNN_OPTS=1 go test -run '^$$' -bench . -benchtime 1x -timeout 60m ./search

## profile: where a training step of $(CONFIG) spends its time on this CPU, op by op (ARGS: e.g. --steps 40 --model.precision bfloat16)
profile: setup
	@$(ENV) go run ./runner profile --config $(CONFIG) $(ARGS)

## fuzz: Go's fuzzing of every reader of user files, FUZZTIME (30s) per target (not in CI)
fuzz: setup
	@$(ENV) FUZZTIME=$(or $(FUZZTIME),30s) bash scripts/fuzz.sh

## embed-worker: the embedding pipeline's worker binary for remote runners (linux/amd64, cgo), build/embed-worker
embed-worker: setup
	@mkdir -p build && $(ENV) GOOS=linux GOARCH=amd64 CGO_ENABLED=1 go build -o build/embed-worker ./embed && echo "embed-worker: build/embed-worker"
