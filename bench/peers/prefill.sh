#!/usr/bin/env bash
# Prefill against ik_llama.cpp's IQ2_BN_R4, interleaved in one script: mbok's fused int8
# forward of a random K = 1 and K = 2 layer over prepared weights (bench/peers/mbok_gemv.cpp,
# the layer's path: the table lookup up to 512 tokens) from one or more builds (say, before
# and after a change), then one MUL_MAT of IQ2_BN_R4 timed with the peers' gemv program
# (ggml_gemv.cpp beside ../shared/peers.md, built as that file says), for 1 and 2 threads,
# 4096x4096 and 11008x4096, t = 128 and 512. Both sides: warm-up, then the best wall time of
# many calls, and the least CPU time of a call (GEMV: the peers' gemv with the same CPU-time
# reading added). Prints one line per case and round, "program:case wall_us cpu_us".
#
#   bench/peers/prefill.sh ROUNDS GEMV MBOK_GEMV [MBOK_GEMV ...]   (PER_CASE=seconds, default 1)
set -euo pipefail
rounds=$1 gemv=$2
shift 2
export GOMP_SPINCOUNT=10000
for round in $(seq "$rounds"); do
  echo "# round $round, $(uptime)"
  for th in 1 2; do
    for m in 4096 11008; do
      for t in 128 512; do
        for b in "$@"; do
          for k in 1 2; do
            "$b" "$k" "$m" 4096 "$t" "$th" "${PER_CASE:-1}" |
              awk -v tag="$b" '{ print tag ":" $1 "/" $2 "/" $3 "/" $4, $5, $(NF-1) }'
          done
        done
        "$gemv" iq2_bn_r4 "$m" 4096 "$t" "$th" "${PER_CASE:-1}" |
          awk -v tag="$gemv" '{ print tag ":" $1 "/" $2 "/" $3 "/" $4, $5, $(NF-1) }'
      done
    done
  done
done
