#!/bin/sh
# --distributed end to end: the --quick finetune on 2 ranks ends at the validation loss of
# one process, and so do runs stopped halfway on 2 ranks and resumed on 1, and the other way.
# f32 accumulators (no stochastic rounding), so the runs differ only in the order of float
# sums: the losses must agree to a relative 1e-4 (measured: about 1e-8; the finetuning itself
# moves the loss by several percent).
# Usage: distributed_test.sh <tiny_transformer> <mpiexec> <work folder> <corpus folder>
set -eu
bin=$1
mpiexec=$2
work=$3
sources=$4
rm -rf "$work"
mkdir -p "$work/one" "$work/two" "$work/resumed-on-1" "$work/resumed-on-2"
# About 300 kB of text: the library's headers.
find "$sources" -name '*.hpp' | sort | xargs cat >"$work/corpus.txt"
common="--quick --corpus $work/corpus.txt --kernels 1 --budgets 0 --accumulator f32"

"$bin" $common --out "$work/one" pretrain
for run in two resumed-on-1 resumed-on-2; do cp "$work"/one/teacher-*.safetensors "$work/$run/"; done
"$bin" $common --out "$work/one" finetune
"$mpiexec" -n 2 "$bin" $common --out "$work/two" --distributed finetune
"$mpiexec" -n 2 "$bin" $common --out "$work/resumed-on-1" --distributed --stop-after 30 finetune
"$bin" $common --out "$work/resumed-on-1" --resume finetune 2>"$work/resumed-on-1.log"
grep -q "resuming at step 30" "$work/resumed-on-1.log"
"$bin" $common --out "$work/resumed-on-2" --stop-after 30 finetune
"$mpiexec" -n 2 "$bin" $common --out "$work/resumed-on-2" --distributed --resume finetune \
  2>"$work/resumed-on-2.log"
grep -q "resuming at step 30" "$work/resumed-on-2.log"

# The run's validation loss from summary.json (the only "valid_loss" the finetune stage writes).
valid_loss() {
  test "$(grep -c '"valid_loss"' "$1/summary.json")" -eq 1
  sed -n 's/.*"valid_loss": \([0-9.eE+-]*\).*/\1/p' "$1/summary.json"
}
# A loss that is a finite positive number: JSON writes NaN as null, which the pattern above
# leaves empty, and two empty strings (or two NaNs) must never compare equal.
finite() {
  printf '%s\n' "$1" | grep -Eq '^[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?$' ||
    { echo "validation loss '$1' is not a finite number" >&2; return 1; }
}
one=$(valid_loss "$work/one")
for run in two resumed-on-1 resumed-on-2; do
  other=$(valid_loss "$work/$run")
  echo "validation loss: one process $one, $run $other"
  finite "$one" && finite "$other"
  awk -v a="$one" -v b="$other" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 * a) }'
done
