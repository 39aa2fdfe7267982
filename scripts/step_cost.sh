#!/usr/bin/env bash
# The cost of a training step of two configs side by side: ROUNDS rounds of
# STEPS steps of each, alternating A, B, A, B … (so a drift in the machine's
# speed falls on both), each a fresh `runner train` process with the
# evaluation and the kNN monitor off; prints the images/s of each run as its
# `train:` line says and the ratio B/A per round.
#
#   scripts/step_cost.sh CONFIG_A CONFIG_B [ROUNDS] [STEPS]
#
# DATA (the data set's path; default the CIFAR-10 copy of ../shared/data)
# and EXPORTS (where the two SavedModels go; default exports/step_cost) may
# be set. The first round exports the models when they are not there yet:
# it runs once more, not counted.
set -euo pipefail
a=${1:?usage: scripts/step_cost.sh CONFIG_A CONFIG_B [ROUNDS] [STEPS]}
b=${2:?usage: scripts/step_cost.sh CONFIG_A CONFIG_B [ROUNDS] [STEPS]}
rounds=${3:-3}
steps=${4:-300}
data=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
exports=${EXPORTS:-exports/step_cost}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/runner" ./runner

rate() { # config, name: prints the run's images/s
	rm -rf "$bin/run"
	"$bin/runner" train --config "$1" --data.path "$data" --run-dir "$bin/run" \
		--export_dir "$exports/$2" --max-steps "$steps" \
		--eval.after_training=false --eval.every_epochs 0 >"$bin/log" 2>&1 ||
		{ cat "$bin/log" >&2; exit 1; }
	sed -n 's/^train: .*(\([0-9.]*\) images\/s.*/\1/p' "$bin/log" | tail -1
}

rate "$a" a >/dev/null
rate "$b" b >/dev/null
echo "round  $(basename "$a") images/s  $(basename "$b") images/s  ratio B/A"
for r in $(seq "$rounds"); do
	ra=$(rate "$a" a)
	rb=$(rate "$b" b)
	echo "$r  $ra  $rb  $(awk -v a="$ra" -v b="$rb" 'BEGIN { printf "%.2f", b / a }')"
done
