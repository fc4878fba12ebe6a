#!/bin/sh
# failed_rank.sh stall|kill|outside|finalize MPIEXEC BINARY DIR: two ranks train and save a
# checkpoint in DIR after step 2; at step 3 rank 1
#   stall:    stops calling: rank 0 must time out after 2 s and end the job (MPI_Abort);
#   kill:     dies (SIGKILL from itself): the launcher must end the job;
#   outside:  stops calling while rank 0 waits inside step 3, and this script kills it with
#             kill -9 from outside: every rank must end well within the trainer's 20 s deadline,
#             and rank 0 must say itself what it was waiting for when the launcher ended it.
# The job must end with an error naming the failure, well before rank 1 would wake up (120 s),
# and the last checkpoint must still resume on one rank.
#   finalize: rank 1 never calls MPI_Finalize: rank 0's finalize, bounded to 2 s, must end it
#             with status 75 and a line naming it, well before rank 1 would wake up.
mode="$1" mpiexec="$2" binary="$3" dir="$4"
rm -f "$dir/state.ckpt" "$dir/rank1.pid"
start=$(date +%s)
log="$dir/job.log"
if [ "$mode" = finalize ]; then
  "$mpiexec" -n 2 "$binary" finalize 2 >"$log" 2>&1
  rc=$?
  elapsed=$(($(date +%s) - start))
  cat "$log" | tail -n 8
  [ "$rc" -ne 0 ] || { echo "FAILED: the job ended with status 0"; exit 1; }
  grep -q "^mbok: rank 0: MPI_Finalize did not return within 2 s" "$log" ||
    { echo "FAILED: rank 0 did not report its finalize timeout"; exit 1; }
  grep -q "Exit code: *75" "$log" || { echo "FAILED: rank 0 did not exit with status 75"; exit 1; }
  [ "$elapsed" -le 30 ] || { echo "FAILED: the job took ${elapsed} s to end"; exit 1; }
  echo "the job ended with status $rc after ${elapsed} s"
  exit 0
fi
"$mpiexec" -n 2 "$binary" "$mode" 3 "$dir" >"$log" 2>&1 &
job=$!
if [ "$mode" = outside ]; then
  waited=0
  while [ ! -s "$dir/rank1.pid" ] && [ "$waited" -lt 300 ]; do sleep 0.1; waited=$((waited + 1)); done
  [ -s "$dir/rank1.pid" ] || { kill "$job"; cat "$log"; echo "FAILED: rank 1 never reached step 3"; exit 1; }
  sleep 1  # rank 0 is now waiting inside step 3
  killed=$(date +%s)
  kill -9 "$(cat "$dir/rank1.pid")" || { echo "FAILED: could not kill rank 1"; exit 1; }
fi
wait "$job"
rc=$?
end=$(date +%s)
elapsed=$((end - start))
out="$(cat "$log")"
printf '%s\n' "$out" | tail -n 8
if [ "$rc" -eq 0 ]; then echo "FAILED: the job ended with status 0"; exit 1; fi
# Each mode's own error, not just any non-zero status: the stall is rank 0's timeout (the rank
# that waited names itself); a killed rank is named by the launcher's report of its signal,
# and the survivor says what it was doing when the launcher ended it (waiting inside step 3
# when killed from outside; for a rank that kills itself rank 0 may still be computing).
if [ "$mode" = stall ] && ! printf '%s\n' "$out" | grep -q "^rank 0: .*did not complete within 2 s"; then
  echo "FAILED: rank 0 reported no timeout"; exit 1
fi
if [ "$mode" != stall ] && ! printf '%s\n' "$out" | grep -q "process rank 1 .* exited on signal 9"; then
  echo "FAILED: the launcher did not report rank 1 killed"; exit 1
fi
if [ "$mode" = kill ] && ! printf '%s\n' "$out" | grep -q "^mbok: rank 0: ended by signal 15 (SIGTERM"; then
  echo "FAILED: rank 0 did not report how it ended"; exit 1
fi
if [ "$mode" = outside ] && ! printf '%s\n' "$out" |
    grep -q "^mbok: rank 0: ended by signal 15 (SIGTERM.* while waiting for: DataParallelTrainer, rank 0, after step 2: example count (all-reduce over all 2 ranks)"; then
  echo "FAILED: rank 0 did not name the collective it was waiting in"; exit 1
fi
if printf '%s\n' "$out" | grep -q "FAILED"; then
  echo "FAILED: a rank reported a failure before step 3"; exit 1
fi
if [ "$mode" = outside ] && [ $((end - killed)) -ge 20 ]; then
  echo "FAILED: the job took $((end - killed)) s to end after the kill (deadline 20 s)"; exit 1
fi
if [ "$elapsed" -gt 60 ]; then echo "FAILED: the job took ${elapsed} s to end"; exit 1; fi
echo "the job ended with status $rc after ${elapsed} s"
"$mpiexec" -n 1 "$binary" resume "$dir" 2 || { echo "FAILED: the last checkpoint does not resume"; exit 1; }
