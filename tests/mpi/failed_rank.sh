#!/bin/sh
# failed_rank.sh stall|kill MPIEXEC BINARY DIR: two ranks train and save a checkpoint in DIR
# after step 2; at step 3 rank 1 stops calling (stall: rank 0 must time out after 2 s and end
# the job) or dies (kill: the launcher must end the job). The job must end with an error well
# before rank 1 would wake up (120 s), and the checkpoint must still resume on one rank.
mode="$1" mpiexec="$2" binary="$3" dir="$4"
rm -f "$dir/state.ckpt"
start=$(date +%s)
out="$("$mpiexec" -n 2 "$binary" "$mode" 3 "$dir" 2>&1)"
rc=$?
elapsed=$(( $(date +%s) - start ))
printf '%s\n' "$out" | tail -n 8
if [ "$rc" -eq 0 ]; then echo "FAILED: the job ended with status 0"; exit 1; fi
# Each mode's own error, not just any non-zero status: the stall is rank 0's timeout (the rank
# that waited names itself); the kill is the launcher's report of rank 1's signal.
if [ "$mode" = stall ] && ! printf '%s\n' "$out" | grep -q "^rank 0: .*did not complete within 2 s"; then
  echo "FAILED: rank 0 reported no timeout"; exit 1
fi
if [ "$mode" = kill ] && ! printf '%s\n' "$out" | grep -q "process rank 1 .* exited on signal 9"; then
  echo "FAILED: the launcher did not report rank 1 killed"; exit 1
fi
if printf '%s\n' "$out" | grep -q "FAILED"; then
  echo "FAILED: a rank reported a failure before step 3"; exit 1
fi
if [ "$elapsed" -gt 60 ]; then echo "FAILED: the job took ${elapsed} s to end"; exit 1; fi
echo "the job ended with status $rc after ${elapsed} s"
"$mpiexec" -n 1 "$binary" resume "$dir" 2 || { echo "FAILED: the last checkpoint does not resume"; exit 1; }
