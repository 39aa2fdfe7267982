#!/usr/bin/env bash
# third_party/setup.sh: everything the project needs on a machine, idempotent.
#   - .venv with the exact pins of requirements.txt (TensorFlow's wheel carries
#     the C library that Go links against, see tfenv.sh);
#   - the link folder third_party/tflib (tfenv.sh);
#   - Fashion-MNIST's official IDX files (Debian's dataset-fashion-mnist).
# Quick when nothing changed: the venv is rebuilt only when requirements.txt
# differs from the copy recorded at the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
stamp=.venv/.requirements.installed
if [ ! -x .venv/bin/python ] || ! cmp -s requirements.txt "$stamp"; then
  echo "setup: installing requirements.txt into .venv"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt "$stamp"
else
  echo "setup: .venv is up to date"
fi

# shellcheck source=third_party/tfenv.sh
source third_party/tfenv.sh

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
