#!/usr/bin/env bash
# Prefill against ik_llama.cpp's IQ2_BN_R4, interleaved in one script: mbok's fused int8
# forward over prepared weights (forward_i8_k{1,2}/avx512-lut, the layer's path up to 512
# tokens) from one or more mbok_bench builds (say, before and after a change), then one
# MUL_MAT of IQ2_BN_R4 timed with the peers' gemv program (../shared/tools/ggml_gemv.cpp,
# built as ../shared/peers.md says), for 1 and 2 threads, 4096x4096 and 11008x4096, t = 128
# and 512. Prints one line per case and round, "name microseconds"; best of the rounds is
# what the tables in docs/performance.md report.
#
#   bench/peers/prefill.sh ROUNDS GEMV MBOK_BENCH [MBOK_BENCH ...]
set -euo pipefail
rounds=$1 gemv=$2
shift 2
export GOMP_SPINCOUNT=10000
for round in $(seq "$rounds"); do
  echo "# round $round, $(uptime)"
  for th in 1 2; do
    for b in "$@"; do
      "$b" --benchmark_min_time=0.3 --benchmark_format=csv \
        --benchmark_filter="forward_i8_k[12]/avx512-lut/(4096x4096|11008x4096)/t:(128|512)/threads:$th/" \
        2>/dev/null | awk -F, -v tag="$b" '/^"forward/ { gsub(/"/, "", $1); print tag ":" $1, $3 }'
    done
    for m in 4096 11008; do
      for t in 128 512; do
        "$gemv" iq2_bn_r4 "$m" 4096 "$t" "$th" 1 |
          awk -v m="$m" -v t="$t" -v th="$th" '{ print "iq2_bn_r4/" m "x4096/t:" t "/threads:" th, $5 }'
      done
    done
  done
done
