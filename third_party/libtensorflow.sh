#!/usr/bin/env bash
# third_party/libtensorflow.sh: TensorFlow's C library and headers where cgo
# and the dynamic linker look by default, so that graft's `-ltensorflow` and
# `#include "tensorflow/c/c_api.h"` resolve in any shell with no variable set.
#
#   bash third_party/libtensorflow.sh install     # `make setup` runs this
#   bash third_party/libtensorflow.sh uninstall   # `make uninstall`
#   bash third_party/libtensorflow.sh status
#
# It follows TensorFlow's own libtensorflow install instructions (library
# under PREFIX/lib, headers under PREFIX/include, then ldconfig), taking both
# from the TensorFlow wheel in .venv: libtensorflow_cc.so.2 exports the C API;
# it is installed with the link name libtensorflow.so that graft links, beside
# libtensorflow_framework.so.2. Headers: only the C API's (the closure of the
# headers graft includes, as gcc resolves it), not the wheel's C++ tree.
#
# PREFIX is /usr/local unless TF_PREFIX says otherwise. Every file written is
# listed in PREFIX/share/infomax/libtensorflow.files, which uninstall reads;
# a file already there that this script did not write is never overwritten.
# Without write access to PREFIX it changes nothing and prints the command to
# run as root; meanwhile `source third_party/tfenv.sh` works in one shell.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX="${TF_PREFIX:-/usr/local}"
record_dir="$PREFIX/share/infomax"
files="$record_dir/libtensorflow.files"
source_stamp="$record_dir/libtensorflow.source"
self="bash $(pwd)/third_party/libtensorflow.sh"

wheel_dir() {
  local d
  for d in .venv/lib/python3*/site-packages/tensorflow; do
    [ -e "$d/libtensorflow_cc.so.2" ] && { echo "$(pwd)/$d"; return; }
  done
  return 1
}

# The installed library's identity: the wheel's dist-info name (version and
# build) and the libraries' sizes.
identity() {
  local w="$1"
  (cd "$w/.." && ls -d tensorflow*.dist-info | sort | tr '\n' ' ')
  stat -c '%n %s' "$w/libtensorflow_cc.so.2" "$w/libtensorflow_framework.so.2" | sed "s|$w/||"
}

headers() { # the C API headers graft needs, relative to the wheel's include/
  local inc="$1/include"
  printf '#include "tensorflow/c/c_api.h"\n#include "tensorflow/c/c_api_experimental.h"\n#include "tensorflow/c/eager/c_api.h"\n#include "tensorflow/c/tf_tstring.h"\n' |
    gcc -I"$inc" -M -x c - | tr ' \\' '\n\n' | grep -F "$inc/" | sed "s|^$inc/||" | sort -u
}

default_prefix() { [ "$PREFIX" = /usr/local ] || [ "$PREFIX" = /usr ]; }

check_link() { # compile and run a C program against PREFIX's library
  local tmp flags=(); tmp="$(mktemp -d)"
  # Under /usr/local: no flags but -ltensorflow, as graft links it.
  default_prefix || flags=(-I"$PREFIX/include" -L"$PREFIX/lib" -Wl,-rpath,"$PREFIX/lib")
  printf '#include <stdio.h>\n#include "tensorflow/c/c_api.h"\nint main(void){printf("%%s\\n", TF_Version());return 0;}\n' >"$tmp/v.c"
  if gcc "${flags[@]}" "$tmp/v.c" -ltensorflow -o "$tmp/v" 2>"$tmp/err" && "$tmp/v" 2>>"$tmp/err"; then rm -rf "$tmp"; return 0; fi
  cat "$tmp/err" >&2; rm -rf "$tmp"; return 1
}

install_lib() {
  if [ -n "${TF_DIR:-}" ]; then
    echo "setup: TF_DIR=$TF_DIR: cgo takes TensorFlow from there through \`source third_party/tfenv.sh\`; nothing installed in $PREFIX"
    return 0
  fi
  local w; w="$(wheel_dir)" || { echo "setup: no TensorFlow wheel in .venv; run \`make setup\` first" >&2; return 1; }
  local want; want="$(identity "$w")"
  if [ "$(cat "$source_stamp" 2>/dev/null)" = "$want" ] && [ -e "$PREFIX/lib/libtensorflow.so" ] && [ -e "$PREFIX/include/tensorflow/c/c_api.h" ]; then
    echo "setup: TensorFlow's C library in $PREFIX is up to date"
    return 0
  fi
  mkdir -p "$PREFIX/lib" "$PREFIX/include" "$record_dir" 2>/dev/null || true
  if [ ! -w "$PREFIX/lib" ] || [ ! -w "$PREFIX/include" ] || [ ! -w "$record_dir" ]; then
    cat >&2 <<MSG
setup: no write access to $PREFIX, so TensorFlow's C library is not installed
  where cgo looks by default. Either run, once, as root:
    sudo $self install
  or install it under a prefix of yours (TF_PREFIX=\$HOME/.local) and point
  CGO_CFLAGS, CGO_LDFLAGS and LD_LIBRARY_PATH at it, or, for one shell:
    source third_party/tfenv.sh
  (\`make\` targets source it themselves.)
MSG
    return 0
  fi
  local hdrs; hdrs="$(headers "$w")"
  local targets="lib/libtensorflow_cc.so.2 lib/libtensorflow_framework.so.2 lib/libtensorflow.so"
  local t
  for t in $targets $(sed 's|^|include/|' <<<"$hdrs"); do
    if [ -e "$PREFIX/$t" ] || [ -L "$PREFIX/$t" ]; then
      if ! grep -qxF "$PREFIX/$t" "$files" 2>/dev/null; then
        echo "setup: $PREFIX/$t exists and was not installed by infomax: leaving $PREFIX alone. Remove it (another TensorFlow?) and run make setup again, or use: source third_party/tfenv.sh" >&2
        return 0
      fi
    fi
  done
  echo "setup: installing TensorFlow's C library and headers into $PREFIX/lib and $PREFIX/include (undo: make uninstall)"
  local new; new="$(mktemp)"
  install -m 0755 "$w/libtensorflow_cc.so.2" "$PREFIX/lib/.libtensorflow_cc.so.2.tmp"
  mv -f "$PREFIX/lib/.libtensorflow_cc.so.2.tmp" "$PREFIX/lib/libtensorflow_cc.so.2"
  install -m 0755 "$w/libtensorflow_framework.so.2" "$PREFIX/lib/.libtensorflow_framework.so.2.tmp"
  mv -f "$PREFIX/lib/.libtensorflow_framework.so.2.tmp" "$PREFIX/lib/libtensorflow_framework.so.2"
  ln -sfn libtensorflow_cc.so.2 "$PREFIX/lib/libtensorflow.so"
  for t in $targets; do echo "$PREFIX/$t" >>"$new"; done
  while read -r h; do
    install -D -m 0644 "$w/include/$h" "$PREFIX/include/$h"
    echo "$PREFIX/include/$h" >>"$new"
  done <<<"$hdrs"
  # Files of an earlier install that this one no longer has.
  if [ -e "$files" ]; then
    { grep -vxFf "$new" "$files" || true; } | while read -r old; do rm -f "$old"; done
  fi
  mv -f "$new" "$files"
  chmod 0644 "$files"
  printf '%s' "$want" >"$source_stamp"
  if command -v ldconfig >/dev/null; then ldconfig; fi
  if v="$(check_link)" && default_prefix; then
    echo "setup: TensorFlow $v C library installed; cgo needs no flags now"
  elif [ -n "$v" ]; then
    echo "setup: TensorFlow $v C library installed under $PREFIX; point cgo at it: CGO_CFLAGS=-I$PREFIX/include CGO_LDFLAGS=\"-L$PREFIX/lib -Wl,-rpath,$PREFIX/lib\""
  else
    echo "setup: installed into $PREFIX, but a test program does not link with plain -ltensorflow (see above)" >&2
    return 1
  fi
}

uninstall_lib() {
  if [ ! -e "$files" ]; then
    echo "uninstall: no infomax install of TensorFlow's C library in $PREFIX"
    return 0
  fi
  echo "uninstall: removing the $(wc -l <"$files") files listed in $files"
  while read -r f; do rm -f "$f"; done <"$files"
  # Header folders this install made, if now empty.
  find "$PREFIX/include/tensorflow" "$PREFIX/include/tsl" "$PREFIX/include/xla" -depth -type d -empty -delete 2>/dev/null || true
  rm -f "$files" "$source_stamp"
  rmdir "$record_dir" 2>/dev/null || true
  if command -v ldconfig >/dev/null; then ldconfig; fi
}

status_lib() {
  if [ -e "$files" ]; then
    echo "installed in $PREFIX ($(wc -l <"$files") files), from: $(cat "$source_stamp" | head -n 1)"
  else
    echo "not installed in $PREFIX"
  fi
}

case "${1:-}" in
  install) install_lib ;;
  uninstall) uninstall_lib ;;
  status) status_lib ;;
  *) echo "usage: $0 install|uninstall|status" >&2; exit 2 ;;
esac
