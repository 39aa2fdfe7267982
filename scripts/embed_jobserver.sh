#!/usr/bin/env bash
# scripts/embed_jobserver.sh: the embedding pipeline on a standalone Beam job
# server, with its workers as separate processes, the way Flink, Spark and
# Dataflow run it: Prism (Beam's Go runner) as a job server on localhost:8073,
# Beam's Go SDK boot program as an EXTERNAL worker pool on localhost:50000
# that starts each worker from the binary staged through the job API
# (--worker_binary). It then runs the same job in-process and checks that
# both wrote the same files, byte for byte.
#
#   bash scripts/embed_jobserver.sh RUN_DIR IMAGES_FOLDER    # from the project root
#
# Every process it starts listens on loopback ports of this machine only and
# is stopped at the end.
set -euo pipefail
caller="$(pwd)"
cd "$(dirname "$0")/.."
run="${1:?usage: $0 RUN_DIR IMAGES_FOLDER}"
images="${2:?usage: $0 RUN_DIR IMAGES_FOLDER}"
work="$(mktemp -d)"
# Beam's boot program leaves pipeline_options.json in its working folder.
had_options=0; [ -e "$caller/pipeline_options.json" ] && had_options=1
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"; [ $had_options = 1 ] || rm -f "$caller/pipeline_options.json"' EXIT

echo "embed_jobserver: building embed, prism and the Go SDK boot program"
go build -o "$work/embed" ./embed
go build -o "$work/prism" github.com/apache/beam/sdks/v2/go/cmd/prism
go build -o "$work/boot" github.com/apache/beam/sdks/v2/go/container

# The workers resolve a relative RUN_DIR from the folder this was started in.
cd "$caller"
for port in 8073 8074 50000; do
  if (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "embed_jobserver: port $port is taken (another job server or worker pool?): stop it first" >&2; exit 1
  fi
done
"$work/prism" --job_port 8073 --idle_shutdown_timeout 5m >"$work/prism.log" 2>&1 &
"$work/boot" --worker_pool >"$work/pool.log" 2>&1 &
for _ in $(seq 50); do
  (echo >/dev/tcp/127.0.0.1/8073) 2>/dev/null && (echo >/dev/tcp/127.0.0.1/50000) 2>/dev/null && break
  sleep 0.2
done

echo "embed_jobserver: submitting to the job server (workers from the pool)"
"$work/embed" --runner=universal --endpoint=localhost:8073 \
  --environment_type=EXTERNAL --environment_config=localhost:50000 \
  --worker_binary="$work/embed" \
  --run-dir "$run" --input "$images" --output "$work/jobserver" --shards 8 2>"$work/submit.log" || { echo "embed_jobserver: the job failed:" >&2; grep -v "level=DEBUG" "$work/submit.log" | tail -5 >&2; exit 1; }
grep -q "Worker exited successfully" "$work/pool.log" || { echo "embed_jobserver: no worker ran in the pool" >&2; cat "$work/pool.log" >&2; exit 1; }

echo "embed_jobserver: the same job in-process"
"$work/embed" --run-dir "$run" --input "$images" --output "$work/inprocess" --shards 8 2>"$work/inprocess.log"

if diff -r "$work/jobserver" "$work/inprocess" >/dev/null; then
  echo "embed_jobserver: ok: $(ls "$work/jobserver" | wc -l) files, the same from the job server and in-process; $(grep -c 'Starting worker\|Worker exited successfully' "$work/pool.log") worker lines in the pool's log"
else
  echo "embed_jobserver: the job server's output differs from the in-process run" >&2
  diff -r "$work/jobserver" "$work/inprocess" >&2 || true
  exit 1
fi
