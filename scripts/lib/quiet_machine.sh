# Waiting for a quiet machine before a timed run (POSIX sh; sourced, not run).
#
#   . scripts/lib/quiet_machine.sh
#   wait_until_quiet        # returns when quiet, exits 3 past the deadline
#
# Quiet: the 1-minute load average below MAX_LOAD (default 1.0) and the cores more than 90 %
# idle over the last second (the load average lags: a job that just started shows in it only
# after a while). With IGNORE_NICE=1, time of processes at a positive nice value counts as idle
# (they yield the cores to the timed run), and the load average is not checked (it counts
# them too). Gives up after WAIT_SECONDS (default 3600).

quiet_deadline=$(( $(date +%s) + ${WAIT_SECONDS:-3600} ))

# Busy share of all cores over one second, from /proc/stat.
busy_share() {
  a=$(head -n 1 /proc/stat); sleep 1; b=$(head -n 1 /proc/stat)
  printf '%s\n%s\n' "$a" "$b" | awk -v nice_idle="${IGNORE_NICE:-0}" '{
    idle[NR] = $5 + $6 + (nice_idle == 1 ? $3 : 0); total[NR] = 0
    for (i = 2; i <= NF; ++i) total[NR] += $i }
    END { dt = total[2] - total[1]; print (dt > 0 ? 1 - (idle[2] - idle[1]) / dt : 1) }'
}

wait_until_quiet() {
  while :; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" -v m="${MAX_LOAD:-1.0}" -v b="$(busy_share)" -v n="${IGNORE_NICE:-0}" \
      'BEGIN { exit !((n == 1 || l < m) && b < 0.1) }'; then
      return 0
    fi
    if [ "$(date +%s)" -ge "$quiet_deadline" ]; then
      echo "the machine never became quiet (load average $load, MAX_LOAD ${MAX_LOAD:-1.0}): not measured"
      exit 3
    fi
    sleep 15
  done
}
