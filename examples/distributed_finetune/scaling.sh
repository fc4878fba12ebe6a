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
# Environment: MAX_LOAD (default 1.0), WAIT_SECONDS (give up after, default 3600). Prints one
# line per run; exits 3 when the load never fell below MAX_LOAD.
set -u
bin=$1
rounds=${2:-2}
steps=${3:-30}
mode=${4:-scaling}
max_load=${MAX_LOAD:-1.0}
deadline=$(( $(date +%s) + ${WAIT_SECONDS:-3600} ))
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
# Busy share of all cores over one second, from /proc/stat (the load average lags: a job that
# just started shows in it only after a while).
busy() {
  a=$(head -n 1 /proc/stat); sleep 1; b=$(head -n 1 /proc/stat)
  printf '%s\n%s\n' "$a" "$b" | awk '{ idle[NR] = $5 + $6; total[NR] = 0
    for (i = 2; i <= NF; ++i) total[NR] += $i }
    END { dt = total[2] - total[1]; print (dt > 0 ? 1 - (idle[2] - idle[1]) / dt : 1) }'
}
quiet() {
  while :; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" -v m="$max_load" -v b="$(busy)" 'BEGIN { exit !(l < m && b < 0.1) }'; then
      return 0
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "load average stayed at or above $max_load (last $load): not measured"
      exit 3
    fi
    sleep 15
  done
}
run() {  # label ranks threads [overlap]
  quiet
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
