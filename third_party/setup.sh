#!/usr/bin/env bash
# third_party/setup.sh: everything the project needs on a machine, idempotent.
#   - .venv with the exact pins of requirements.txt (TensorFlow's wheel carries
#     the C library that Go links against);
#   - TensorFlow's C library and headers where cgo and the dynamic linker look
#     by default (/usr/local/lib, /usr/local/include), as TensorFlow's own
#     libtensorflow install instructions do, so `go build`, `go run ./runner`,
#     `go test` and gopls work in any shell with nothing sourced
#     (third_party/libtensorflow.sh; `make uninstall` undoes it);
#   - Fashion-MNIST's official IDX files (Debian's dataset-fashion-mnist).
#
# TF_BUILD=gpu (`make setup TF_BUILD=gpu`) installs the GPU wheel
# tensorflow[and-cuda] at the same version instead of tensorflow-cpu; the Go
# code is the same. Switching rebuilds .venv from scratch, since the two wheels
# both provide the `tensorflow` package.
# Quick when nothing changed: the venv is rebuilt only when the requirements
# differ from the copy recorded at the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
TF_BUILD="${TF_BUILD:-cpu}"
case "$TF_BUILD" in
  cpu) reqs="$(cat requirements.txt)" ;;
  gpu) reqs="$(sed -E 's/^tensorflow-cpu==/tensorflow[and-cuda]==/' requirements.txt)" ;;
  *) echo "setup: TF_BUILD=$TF_BUILD: want cpu or gpu" >&2; exit 2 ;;
esac
grep -qE '^tensorflow(-cpu|\[and-cuda\])==' <<<"$reqs" || {
  echo "setup: requirements.txt has no tensorflow-cpu==VERSION line to build the $TF_BUILD requirements from" >&2; exit 2; }

stamp=.venv/.requirements.installed
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$reqs" ]; then
  if [ -e "$stamp" ] && ! grep -qxF "$(grep -E '^tensorflow' <<<"$reqs")" "$stamp"; then
    echo "setup: switching TensorFlow build to '$TF_BUILD': removing .venv to rebuild it"
    rm -rf .venv
  fi
  echo "setup: installing the $TF_BUILD requirements into .venv"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  tmp="$(mktemp)"
  printf '%s\n' "$reqs" >"$tmp"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$tmp"
  rm -f "$tmp"
  printf '%s' "$reqs" >"$stamp"
else
  echo "setup: .venv is up to date ($TF_BUILD build)"
fi

bash third_party/libtensorflow.sh install

FMNIST="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
files="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"
missing=0
for f in $files; do [ -e "$FMNIST/$f" ] || missing=1; done
if [ "$missing" = 1 ]; then
  if [ "$FMNIST" = /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian's dataset-fashion-mnist"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    cat >&2 <<MSG
setup: Fashion-MNIST is missing from $FMNIST.
  On Debian or Ubuntu: sudo apt-get install dataset-fashion-mnist
  Elsewhere: download the four official .gz IDX files from the Fashion-MNIST
  release into a folder and set data.path in the config (or FASHION_MNIST_DIR
  for this script) to it.
MSG
    exit 1
  fi
else
  echo "setup: Fashion-MNIST found in $FMNIST"
fi
