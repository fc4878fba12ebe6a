#!/bin/sh
# Steps/s of distributed_finetune, one thread per rank: 1 rank, 2 ranks, and 1 process with 2
# threads, interleaved rounds, each started only when the 1-minute load average is below
# MAX_LOAD and the cores were more than 90 % idle for the last second (other jobs on the
# machine would make two ranks look slower than they are).
#
#   sh scaling.sh BUILD/examples/distributed_finetune/distributed_finetune [rounds] [steps]
#   sh scaling.sh BIN [rounds] [steps] overlap
#
# The second form runs 2 ranks (one thread each) without and with the overlap of the
# signals' rings with the backward (distributed_finetune's `overlap` argument), interleaved.
#
# Environment: MAX_LOAD, WAIT_SECONDS, IGNORE_NICE (scripts/lib/quiet_machine.sh). Prints one
# line per run; exits 3 when the machine never became quiet.
set -u
bin=$1
rounds=${2:-2}
steps=${3:-30}
mode=${4:-scaling}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
. "$(dirname "$0")/../../scripts/lib/quiet_machine.sh"
run() {  # label ranks threads [overlap]
  wait_until_quiet
  before=$(cut -d' ' -f1 /proc/loadavg)
  out=$(OMP_NUM_THREADS=$3 mpiexec -n "$2" "$bin" "$steps" ${4:-} 2>&1)
  echo "$1: load average $before before, $(cut -d' ' -f1 /proc/loadavg) after: $(echo "$out" | grep 'steps/s')"
}
r=1
while [ "$r" -le "$rounds" ]; do
  if [ "$mode" = overlap ]; then
    run "2 ranks, no overlap  " 2 1
    run "2 ranks, overlap     " 2 1 overlap
  else
    run "1 rank, 1 thread " 1 1
    run "2 ranks, 1 thread" 2 1
    run "1 rank, 2 threads" 1 2
  fi
  r=$((r + 1))
done
