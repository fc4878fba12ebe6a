#!/bin/sh
# Milliseconds per finetuning step of the demo's model (K = 2, the default batch of 16
# sequences of 64 tokens), one thread per rank: 1 rank; 2 ranks with the signals summed while
# the backward runs (the default) and after it (--no-overlap); 1 process with 2 threads.
# Interleaved rounds, each run started only when the machine is quiet
# (scripts/lib/quiet_machine.sh). Each run starts from a fresh copy of the demo's teacher,
# tokenizer, corpus and post-training K = 2 file, and prints the pipeline's own line:
# validation loss, "ms/step" (wall time of the whole step) and the part of it spent in the
# update after the backward (the optimizers' step and the communication the backward did not
# hide).
#
#   sh examples/tiny_transformer/scaling.sh BUILD/examples/tiny_transformer/tiny_transformer \
#      tiny_transformer_out [rounds] [steps]
#
# tiny_transformer_out: the folder of a finished `scripts/demo.sh` (or `tiny_transformer
# convert`) run with the default model. Environment: MAX_LOAD, WAIT_SECONDS, IGNORE_NICE.
set -eu
bin=$1
demo=$2
rounds=${3:-3}
steps=${4:-100}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
. "$(dirname "$0")/../../scripts/lib/quiet_machine.sh"
[ -f "$demo/ptq-k2.mbok" ] || { echo "error: $demo has no ptq-k2.mbok (run the demo first)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {  # label ranks threads [flags]
  wait_until_quiet
  rm -rf "$work/out" && mkdir "$work/out"
  for f in "$demo"/teacher-* "$demo"/tokenizer-*.json "$demo"/train.txt "$demo"/valid.txt \
           "$demo"/ptq-k2.mbok "$demo"/summary.json; do
    cp -r "$f" "$work/out/"
  done
  before=$(cut -d' ' -f1 /proc/loadavg)
  distributed=""
  [ "$2" -gt 1 ] && distributed=--distributed
  out=$(OMP_NUM_THREADS=$3 mpiexec -n "$2" "$bin" --out "$work/out" --threads "$3" --kernels 2 --budgets 0 \
        --finetune-steps "$steps" --eval-every "$steps" --checkpoint-every "$steps" \
        $distributed ${4:-} finetune 2>&1) || { echo "$out" >&2; exit 1; }
  echo "$1: load $before before, $(cut -d' ' -f1 /proc/loadavg) after: $(echo "$out" | grep 'ms/step' | sed 's/ -> .*//')"
}
r=1
while [ "$r" -le "$rounds" ]; do
  echo "round $r"
  run "1 rank, 1 thread             " 1 1
  run "2 ranks, overlapped          " 2 1
  run "2 ranks, --no-overlap        " 2 1 --no-overlap
  run "1 rank, 2 threads            " 1 2
  r=$((r + 1))
done
