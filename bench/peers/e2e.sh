#!/usr/bin/env bash
# End-to-end speed of mbok-run against ik_llama.cpp's llama-bench on the same random
# LLaMA-shaped weights (bench/peers/prepare_models.sh makes them): prefill of P tokens (ppP)
# and decode of N tokens after a one-token prompt (tgN), tokens/s, for mbok K = 2 (int8
# activations, int8 head) against IQ2_BN_R4 and mbok K = 1 against Q1_0_G128, on each thread
# count, in rounds that interleave the four engines; each cell keeps the best round. mbok-run
# also reports decode as a share of the read bandwidth it measures in the same process.
#
# Usage: bench/peers/e2e.sh MBOK_RUN LLAMA_BENCH MODELS OUT_DIR
# Environment: SHAPES ("1b 7b"), THREADS ("1 2"), ROUNDS (2), PP (512), TG (128).
# Writes OUT_DIR/runs.csv (every run), OUT_DIR/table.md (the best of each cell, the ratios) and,
# with gnuplot, OUT_DIR/decode.svg.
set -euo pipefail
[[ $# -eq 4 ]] || { sed -n '2,13p' "$0"; exit 2; }
mbok_run=$1 llama_bench=$2 models=$3 out=$4
shapes=${SHAPES:-"1b 7b"} threads=${THREADS:-"1 2"} rounds=${ROUNDS:-2}
pp=${PP:-512} tg=${TG:-128}
mkdir -p "$out"
# Both engines thread with OpenMP: one bounded spin (about 0.3 ms) for both, as scripts/bench.sh.
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}
runs=$out/runs.csv
echo "shape,threads,round,engine,pp_tps,tg_tps,bw_share" > "$runs"
total=$(( $(wc -w <<<"$shapes") * $(wc -w <<<"$threads") * rounds * 4 )) done_runs=0
start=$SECONDS

progress() {
  done_runs=$((done_runs + 1))
  local el=$((SECONDS - start)) eta=0
  ((done_runs < total)) && eta=$((el * (total - done_runs) / done_runs))
  printf '\r[%3d/%3d] %-40s elapsed %4ds, eta %4ds' "$done_runs" "$total" "$1" "$el" "$eta" >&2
}

mbok() {  # shape threads round kernels
  local r
  r=$("$mbok_run" bench -m "$models/k$4-$1.mbok" --head int8 -t "$2" -p "$pp" -n "$tg" -r 1)
  local p t b
  p=$(awk -v k="pp$pp:" '$1 == k {print $2}' <<<"$r")
  t=$(awk -v k="tg$tg:" '$1 == k {print $2}' <<<"$r")
  b=$(sed -n 's/.*decode at \([0-9.]*\) % of it.*/\1/p' <<<"$r")
  echo "$1,$2,$3,mbok K=$4,$p,$t,$b" >> "$runs"
}

ik() {  # shape threads round type
  local r p t
  r=$("$llama_bench" -m "$models/$4-$1.gguf" -t "$2" -p "$pp" -n "$tg" -r 1 -o csv 2>/dev/null)
  # Fields split on quotes: the test name (ppP / tgN) is the last, avg_ts three before it.
  p=$(awk -F'"' -v k="pp$pp" '$(NF-1) == k {print $(NF-5)}' <<<"$r")
  t=$(awk -F'"' -v k="tg$tg" '$(NF-1) == k {print $(NF-5)}' <<<"$r")
  echo "$1,$2,$3,ik $4,$p,$t," >> "$runs"
}

for s in $shapes; do
  for th in $threads; do
    for ((round = 1; round <= rounds; ++round)); do
      progress "$s, $th threads, round $round: mbok K=2"; mbok "$s" "$th" "$round" 2
      progress "$s, $th threads, round $round: IQ2_BN_R4"; ik "$s" "$th" "$round" iq2_bn_r4
      progress "$s, $th threads, round $round: mbok K=1"; mbok "$s" "$th" "$round" 1
      progress "$s, $th threads, round $round: Q1_0_G128"; ik "$s" "$th" "$round" q1_0_g128
    done
  done
done
echo >&2

/usr/bin/python3 - "$runs" "$out/table.md" "$pp" "$tg" <<'EOF'
import csv, sys
runs, table, pp, tg = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
best = {}
for r in csv.DictReader(open(runs)):
    key = (r["shape"], r["threads"], r["engine"])
    b = best.setdefault(key, {"pp": 0.0, "tg": 0.0, "bw": ""})
    b["pp"] = max(b["pp"], float(r["pp_tps"] or 0))
    if float(r["tg_tps"] or 0) > b["tg"]:
        b["tg"], b["bw"] = float(r["tg_tps"]), r["bw_share"]
rows = sorted({(s, t) for s, t, _ in best}, key=lambda k: (k[0], int(k[1])))
out = [f"| shape | threads | engine | pp{pp} tokens/s | tg{tg} tokens/s | decode, % of read bandwidth |",
       "|---|---:|---|---:|---:|---:|"]
for s, t in rows:
    for e in ("mbok K=2", "ik iq2_bn_r4", "mbok K=1", "ik q1_0_g128"):
        b = best.get((s, t, e))
        if b:
            out.append(f"| {s} | {t} | {e} | {b['pp']:.1f} | {b['tg']:.2f} | {b['bw']} |")
out += ["", f"| shape | threads | tg{tg}: K=2 / IQ2_BN_R4 | tg{tg}: K=1 / Q1_0_G128 | pp{pp}: K=2 / IQ2_BN_R4 | pp{pp}: K=1 / Q1_0_G128 |",
        "|---|---:|---:|---:|---:|---:|"]
for s, t in rows:
    g = lambda e, f: best.get((s, t, e), {}).get(f, 0.0)
    q = lambda a, b: f"{a / b:.2f}x" if b else "-"
    out.append(f"| {s} | {t} | {q(g('mbok K=2','tg'), g('ik iq2_bn_r4','tg'))} | "
               f"{q(g('mbok K=1','tg'), g('ik q1_0_g128','tg'))} | "
               f"{q(g('mbok K=2','pp'), g('ik iq2_bn_r4','pp'))} | "
               f"{q(g('mbok K=1','pp'), g('ik q1_0_g128','pp'))} |")
open(table, "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF

if command -v gnuplot > /dev/null; then
  awk -F, 'NR > 1 {k = $1 " " $2 "t," $4; if ($6 > best[k]) best[k] = $6}
           END {for (k in best) print k "," best[k]}' "$runs" | sort > "$out/decode.dat"
  gnuplot <<EOF
set terminal svg size 900,420 background "white"
set output "$out/decode.svg"
set datafile separator ","
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8
set ylabel "decode tokens/s (tg$tg)"
set xtics rotate by -30
set key off
set title "Decode speed, best of $rounds interleaved rounds (higher is better)"
plot "$out/decode.dat" using 3:xtic(sprintf("%s %s", stringcolumn(1), stringcolumn(2)))
EOF
fi
