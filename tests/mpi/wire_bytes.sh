#!/bin/sh
# wire_bytes.sh MPIEXEC BINARY DIR RANKS: the bytes each rank sends per step of the trainer,
# measured by Open MPI's pml monitoring (every point-to-point message, and the pml messages of
# collectives), on one block of the demo's layers (mbok_mpi_tests wire). Two runs, of 1 and of
# 7 steps: their difference / 6 is the bytes of one step, without the set-up. Fails unless
# the busiest rank sends at least 1.8x fewer bytes per step than a bandwidth-optimal float
# all-reduce of the same signals (2 (P - 1) / P x 4 bytes per signal), or sends fewer bytes
# than the trainer's own ring messages. Prints one row of the table in docs/distributed.md.
mpiexec="$1" binary="$2" dir="$3" ranks="$4"
mkdir -p "$dir" || exit 1
run() {  # run STEPS: writes $dir/STEPS.log and $dir/STEPS.*.prof
  rm -f "$dir/$1".*.prof
  "$mpiexec" -n "$ranks" --mca pml_monitoring_enable 2 --mca pml_monitoring_enable_output 3 \
    --mca pml_monitoring_filename "$dir/$1" "$binary" wire "$1" >"$dir/$1.log" 2>&1 ||
    { cat "$dir/$1.log"; echo "FAILED: mbok_mpi_tests wire $1 on $ranks ranks"; exit 1; }
}
# Bytes rank R sent in run STEPS: its E (point-to-point) and I (collectives') lines.
sent() {
  f="$dir/$1.$2.prof"
  [ -s "$f" ] || { echo "FAILED: no monitoring output $f (Open MPI's pml monitoring)" >&2; exit 1; }
  awk -F'\t' '$1 == "E" || $1 == "I" { split($4, b, " "); s += b[1] } END { print s + 0 }' "$f"
}
run 1 && run 7 || exit 1
signals=$(sed -n 's/^wire: signals \([0-9]*\) floats.*/\1/p' "$dir/7.log")
floats=$(sed -n 's/^wire: signals [0-9]* floats \([0-9]*\)/\1/p' "$dir/7.log")
[ -n "$signals" ] || { cat "$dir/7.log"; echo "FAILED: no signal count"; exit 1; }
busiest=0 per_rank="" r=0 status=0
while [ "$r" -lt "$ranks" ]; do
  a=$(sent 1 "$r") && b=$(sent 7 "$r") || exit 1
  step=$(( (b - a) / 6 ))
  rings=$(sed -n "s/^wire: rank $r rings \([0-9]*\)/\1/p" "$dir/7.log")
  if [ -z "$rings" ] || [ "$step" -lt "$rings" ]; then
    echo "FAILED: rank $r: measured $step bytes per step, below its ring messages (${rings:-none})"
    status=1
  fi
  per_rank="${per_rank:+$per_rank, }$step"
  [ "$step" -gt "$busiest" ] && busiest=$step
  r=$((r + 1))
done
awk -v p="$ranks" -v n="$signals" -v f="$floats" -v b="$busiest" -v per="$per_rank" 'BEGIN {
  plain = 2 * (p - 1) / p * 4 * n; all = 2 * (p - 1) / p * 4 * (n + f)
  printf "| %d | %d | %d | %s | %d | %.0f | %.2fx | %.0f | %.2fx |\n", p, n, f, per, b, plain, plain / b, all, all / b
  if (plain / b < 1.8) { printf "FAILED: the busiest rank sends only %.2fx fewer bytes than a float all-reduce of the signals (target 1.8x)\n", plain / b; exit 1 }
}' || status=1
exit $status
