#!/usr/bin/env bash
# scripts/embed_formats.sh: embed's two output formats side by side on one
# corpus: Parquet parts (the default) against .npy shards, alternating
# (npy, parquet, npy, parquet, …), each run's wall time and peak resident
# memory from /usr/bin/time, the ratio pair by pair; then a check that both
# folders hold the same paths, classes and features, bit for bit.
#
#   bash scripts/embed_formats.sh RUN_DIR [IMAGES_FOLDER] [ROUNDS]   # from the project root
#
# Without IMAGES_FOLDER it writes 200,000 PNG images from Fashion-MNIST's
# training set (each of the 60,000 as it is, mirrored, inverted and upside
# down, up to 200,000; class folders) into a temporary folder. ROUNDS: 3.
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:?usage: $0 RUN_DIR [IMAGES_FOLDER] [ROUNDS]}"
images="${2:-}"
rounds="${3:-3}"
py=.venv/bin/python
work="$(mktemp -d)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

if [ -z "$images" ]; then
  images="$work/images"
  echo "embed_formats: writing 200,000 PNG images to $images"
  "$py" - "$images" <<'EOF'
import gzip, os, struct, sys, zlib
import numpy as np
src, out = "/usr/share/datasets/fashion-mnist", sys.argv[1]
def idx(name, offset):
    return np.frombuffer(gzip.open(os.path.join(src, name + ".gz")).read(), np.uint8, offset=offset)
imgs = idx("train-images-idx3-ubyte", 16).reshape(-1, 28, 28)
labels = idx("train-labels-idx1-ubyte", 8)
def png(a):
    raw = b"".join(b"\x00" + row.tobytes() for row in a)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
n = 0
for v, f in enumerate([lambda a: a, lambda a: a[:, ::-1], lambda a: 255 - a, lambda a: a[::-1]]):
    for i in range(len(imgs)):
        if n == 200000:
            break
        d = os.path.join(out, "class%d" % labels[i])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "v%d_%05d.png" % (v, i)), "wb") as fh:
            fh.write(png(np.ascontiguousarray(f(imgs[i]))))
        n += 1
EOF
fi

go build -o "$work/embed" ./embed
n=$(find "$images" -type f | wc -l)
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs), model $(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | xargs); $({ grep -o 'amx_bf16\|avx512_bf16' /proc/cpuinfo || true; } | sort -u | xargs | sed 's/^$/no AMX, no AVX512_BF16/'))"
echo "embed_formats: $n files, run $run, $cpu, $(nproc) cores"
printf '| round | npy: seconds | npy: peak MB | parquet: seconds | parquet: peak MB | time parquet/npy |\n|---|---|---|---|---|---|\n'
for r in $(seq "$rounds"); do
  line="| $r"
  declare -A secs
  for f in npy parquet; do
    /usr/bin/time -o "$work/time" -f '%e %M' "$work/embed" --run-dir "$run" --input "$images" \
      --output "$work/out-$f" --format "$f" --classes folders --compute float32 >"$work/log-$f" 2>&1 \
      || { cat "$work/log-$f"; exit 1; }
    read -r s kb <"$work/time"
    secs[$f]=$s
    line="$line | $s | $((kb / 1024))"
  done
  echo "$line | $(awk -v a="${secs[parquet]}" -v b="${secs[npy]}" 'BEGIN{printf "%.3f", a/b}') |"
done

"$py" - "$work/out-npy" "$work/out-parquet" <<'EOF'
import glob, os, sys
import numpy as np, pyarrow.parquet as pq
npy_dir, pq_dir = sys.argv[1:3]
want = {}
for f in sorted(glob.glob(os.path.join(npy_dir, "*.npy"))):
    feats = np.load(f)
    base = f[:-len(".npy")]
    paths = open(base + ".paths.txt").read().splitlines()
    labels = open(base + ".labels.txt").read().splitlines()
    for p, l, x in zip(paths, labels, feats):
        want[p] = (l, x.tobytes())
t = pq.read_table(pq_dir)
rows = t.num_rows
feats = np.stack(t.column("feature").to_numpy(zero_copy_only=False)).astype("<f4")
same = all(want[p] == (l, x.tobytes()) for p, l, x in zip(t.column("path").to_pylist(), t.column("label").to_pylist(), feats))
sizes = lambda d, pat: sum(os.path.getsize(f) for f in glob.glob(os.path.join(d, pat)))
print("embed_formats: %d rows in Parquet, %d in .npy; paths, classes and features %s; on disk: Parquet %.1f MB, .npy + text %.1f MB"
      % (rows, len(want), "equal, bit for bit" if same and rows == len(want) else "DIFFER",
         sizes(pq_dir, "*.parquet") / 1e6, (sizes(npy_dir, "*.npy") + sizes(npy_dir, "*.txt")) / 1e6))
sys.exit(0 if same and rows == len(want) else 1)
EOF
