#!/bin/sh
# stalled_rank.sh MPIEXEC BINARY: rank 1 stops calling at step 3; rank 0 must time out (2 s),
# report it and end the whole job with an error well before rank 1 would wake up (120 s).
mpiexec="$1" binary="$2"
start=$(date +%s)
out="$("$mpiexec" -n 2 "$binary" stall 3 2>&1)"
rc=$?
elapsed=$(( $(date +%s) - start ))
printf '%s\n' "$out" | tail -n 5
if [ "$rc" -eq 0 ]; then echo "FAILED: the job ended with status 0"; exit 1; fi
if ! printf '%s\n' "$out" | grep -q "did not complete within 2 s"; then
  echo "FAILED: no timeout reported"; exit 1
fi
if [ "$elapsed" -gt 60 ]; then echo "FAILED: the job took ${elapsed} s to end"; exit 1; fi
echo "ok: ended with status $rc after ${elapsed} s"
