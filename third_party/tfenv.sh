# third_party/tfenv.sh: cgo's flags for TensorFlow's C library, when it is not
# where cgo looks by default.
#
#   source third_party/tfenv.sh      # from the project root, in bash or zsh
#
# graft (the Go bindings) links -ltensorflow and includes tensorflow/c/c_api.h.
# `make setup` installs both under /usr/local (third_party/libtensorflow.sh),
# where cgo and the dynamic linker find them with no flags: then this file sets
# nothing. Where setup could not (no root), it points cgo at the wheel in .venv
# instead: the wheel ships libtensorflow_cc.so.2, which exports the C API, and
# the headers under tensorflow/include; we give the library the name the linker
# wants in a link folder, third_party/tflib/.
#
# With an official libtensorflow build (CPU or GPU) instead, set TF_DIR to the
# folder that holds its lib/ and include/ before sourcing:
#   TF_DIR=/opt/libtensorflow source third_party/tfenv.sh
#
# The Makefile sources this file too, so both agree.

_infomax_root="$(cd "$(dirname "${BASH_SOURCE[0]:-${(%):-%x}}")/.." && pwd)"

_infomax_system=0
if [ -z "${TF_DIR:-}" ] && [ -e "${TF_PREFIX:-/usr/local}/share/infomax/libtensorflow.files" ]; then
  _infomax_system=1 # installed by make setup: nothing to set
elif [ -n "${TF_DIR:-}" ]; then
  if [ ! -e "$TF_DIR/include/tensorflow/c/c_api.h" ] || ! ls "$TF_DIR"/lib/libtensorflow.so* >/dev/null 2>&1; then
    echo "tfenv: TF_DIR=$TF_DIR has no include/tensorflow/c/c_api.h or lib/libtensorflow.so*; point it at an extracted libtensorflow release" >&2
    return 1 2>/dev/null || exit 1
  fi
  _tf_inc="$TF_DIR/include"
  _tf_lib="$TF_DIR/lib"
else
  _tf_wheel="$_infomax_root/.venv/lib/python3.11/site-packages/tensorflow"
  if [ ! -e "$_tf_wheel/libtensorflow_cc.so.2" ]; then
    _tf_wheel="$(ls -d "$_infomax_root"/.venv/lib/python3*/site-packages/tensorflow 2>/dev/null | head -n 1)"
  fi
  if [ -z "$_tf_wheel" ] || [ ! -e "$_tf_wheel/libtensorflow_cc.so.2" ]; then
    echo "tfenv: no TensorFlow wheel in $_infomax_root/.venv; run \`make setup\` first (or set TF_DIR to an official libtensorflow build)" >&2
    return 1 2>/dev/null || exit 1
  fi
  _tf_inc="$_tf_wheel/include"
  _tf_lib="$_infomax_root/third_party/tflib"
  mkdir -p "$_tf_lib"
  ln -sfn "$_tf_wheel/libtensorflow_cc.so.2" "$_tf_lib/libtensorflow.so"
  ln -sfn "$_tf_wheel/libtensorflow_cc.so.2" "$_tf_lib/libtensorflow_cc.so.2"
  ln -sfn "$_tf_wheel/libtensorflow_framework.so.2" "$_tf_lib/libtensorflow_framework.so.2"
fi

if [ "$_infomax_system" = 0 ]; then
  export CGO_ENABLED=1
  export CGO_CFLAGS="-I$_tf_inc"
  export CGO_LDFLAGS="-L$_tf_lib -Wl,-rpath,$_tf_lib"
  # The runtime finds the libraries through the rpath above; LD_LIBRARY_PATH
  # also covers binaries built elsewhere (go test caches, `go run`).
  export LD_LIBRARY_PATH="$_tf_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
unset _tf_inc _tf_lib _tf_wheel _infomax_system
