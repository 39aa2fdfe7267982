#!/usr/bin/env bash
# scripts/fuzz.sh: Go's native fuzzing of every reader of a file a user hands
# us, each target for FUZZTIME (default 30s). Prints each target's executions
# and what it found. A failing input is saved by Go under the package's
# testdata/fuzz/<target>/, where plain `go test` runs it from then on:
# commit it with the fix. `make fuzz` runs this; CI does not (it takes minutes).
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-30s}"
targets=(
  "./data FuzzDecodeImage"
  "./data FuzzIDX"
  "./data FuzzCIFAR10Batch"
  "./data FuzzTar"
  "./data FuzzZip"
  "./data FuzzReadCache"
  "./data FuzzShards"
  "./search FuzzParse"
  "./search FuzzParquet"
  "./search FuzzLoadANN"
  "./internal/hnsw FuzzCheck"
  "./tboard FuzzReadEvents"
  "./config FuzzLoad"
  "./checkpoint FuzzLatest"
)
failed=0
summary=()
for t in "${targets[@]}"; do
  set -- $t
  log="$(mktemp)"
  echo "fuzz: $1 $2 for $FUZZTIME"
  # Minimising each new input for the default minute starves targets that
  # cost milliseconds an input (the approximate index's): 5 s.
  if go test -run '^$' -fuzz "^$2\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "${FUZZMINIMIZETIME:-5s}" "$1" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    failed=1
    cat "$log"
  fi
  last="$(grep -E '^fuzz: elapsed' "$log" | tail -n 1)"
  summary+=("$(printf '%-6s %-8s %-18s %s' "$result" "$1" "$2" "${last#fuzz: }")")
  rm -f "$log"
done
echo
printf '%s\n' "${summary[@]}"
exit $failed
