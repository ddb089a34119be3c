#!/usr/bin/env bash
# Training stores of the online rewriting benchmark (docs/benchmarks.md#online-rewriting).
#
#   bash bench/online_stores.sh            # the first two stores below, ~30 min on 2 cores
#   bash bench/online_stores.sh --control  # and the third, ~15 min more
#
# train-240.duckdb     240 households (mn*, mm*), train-side phrasings, noisy ASR: 250,741 turns
# train-360mix.duckdb  the same plus 120 households (mx*) on the exact channel (typed requests,
#                      or a recogniser that gets the words right): 355,393 turns
# train-360noisy.duckdb  with --control: the 240 plus 120 more noisy households (mq*, seed 23), the
#                      same amount of logs on one channel (is it the channel or the size?)
# Each with its friction signals (`selflearn signals`), as a user would compute them.
set -euo pipefail
cd "$(dirname "$0")/.."
S=${SELFLEARN:-.venv/bin/selflearn}
OUT=bench/.cache/online
mkdir -p "$OUT"
sim() {  # seed prefix asr folder workers
  "$S" simulate --households 120 --days 14 --split train --corpora hwu64,ha_tests \
    --asr "$3" --seed "$1" --prefix "$2" --out "$OUT/$4" --workers "$5"
}
store() {  # name folder... : a fresh store of those simulations, with its friction signals
  local name=$1
  shift
  rm -f "$OUT/$name.duckdb"
  "$S" ingest "${@/#/$OUT/}" --store "$OUT/$name.duckdb"
  "$S" signals --store "$OUT/$name.duckdb"
}
sim 21 mn noisy sim-train 1 &
first=$!
sim 22 mm noisy sim-train2 1 &
second=$!
wait "$first" && wait "$second"  # a failed simulation stops the script (a bare `wait` would not)
sim 23 mx exact sim-train3 2
store train-240 sim-train sim-train2
store train-360mix sim-train sim-train2 sim-train3
if [[ "${1:-}" == "--control" ]]; then
  sim 23 mq noisy sim-train4 2
  store train-360noisy sim-train sim-train2 sim-train4
fi
