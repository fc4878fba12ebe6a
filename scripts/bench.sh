#!/usr/bin/env bash
# Builds the benchmarks (Release, in build-bench/ or $MBOK_BENCH_DIR), runs mbok_bench with JSON
# output, and turns the JSON into a markdown table of times and ratios against the dense
# baselines (Eigen, OpenBLAS) measured in the same run. The table goes to stdout and to
# build-bench/performance.md; the raw results stay in build-bench/results.json.
#
# Usage: scripts/bench.sh [--quick] [--filter REGEX] [-- MORE_GOOGLE_BENCHMARK_FLAGS...]
#        scripts/bench.sh --decode [-- MBOK_DECODE_BENCH_FLAGS...]
#   --quick         short runs (0.05 s per case instead of 0.5 s): a smoke test, noisy numbers
#   --decode        only the model-scale decode benchmark (bench/decode_bench.cpp: LLaMA-7B- and
#                   1B-shaped stacks of linear layers, tokens/s against the read-bandwidth limit;
#                   needs about 5 GiB of memory); its markdown table goes to stdout and to
#                   build-bench/decode.md. Flags after -- go to mbok_decode_bench (--model,
#                   --kernels, --threads, --tokens, --float, --no-dense)
#   --filter REGEX  only the cases whose names match (Google Benchmark's --benchmark_filter);
#                   the baselines a case is compared with must match too, e.g.
#                   --filter '4096x4096/t:1/'
# Case names: <family>/<impl>/<m>x<n>/t:<tokens>/threads:<threads> (bench/baselines.hpp).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$MBOK_ROOT"

quick=0 decode=0 filter="" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --decode) decode=1 ;;
    --filter) filter="${2:?--filter needs a regular expression}"; shift ;;
    --filter=*) filter="${1#--filter=}" ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: scripts/bench.sh [--quick] [--decode] [--filter REGEX] [-- FLAGS...]" >&2; exit 2 ;;
  esac
  shift
done

ensure_packages build-essential cmake libeigen3-dev libbenchmark-dev nlohmann-json3-dev \
  libopenblas-dev libomp-dev

dir="${MBOK_BENCH_DIR:-build-bench}"
log "building the benchmarks (Release, $dir)"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DMBOK_BUILD_TESTS=OFF -DMBOK_BUILD_EXAMPLES=OFF \
  -DMBOK_BUILD_TOOLS=OFF >/dev/null
# How OpenMP's idle threads wait decides what a split costs (docs/decode.md, "Threads"): a
# sleeping thread takes 25-60 us to wake on a virtual machine, a spinning one about 1 us, but
# threads that spin for milliseconds (libgomp's default) lose their CPU to other processes on
# a loaded machine and then wait a scheduler slice. Unless the caller chose a policy, spin for
# about 0.3 ms (10000 rounds on Zen 4), long enough to bridge the gap between two layers.
if [ -z "${OMP_WAIT_POLICY:-}" ] && [ -z "${GOMP_SPINCOUNT:-}" ]; then
  export GOMP_SPINCOUNT=10000
fi

if [ "$decode" -eq 1 ]; then
  cmake --build "$dir" -j"$MBOK_JOBS" --target mbok_decode_bench
  log "running mbok_decode_bench ${extra[*]:-} (table also in $dir/decode.md)"
  "$dir/bench/mbok_decode_bench" "${extra[@]}" | tee "$dir/decode.md"
  exit 0
fi
cmake --build "$dir" -j"$MBOK_JOBS" --target mbok_bench mbok_bench_report

args=(--benchmark_out="$dir/results.json" --benchmark_out_format=json)
if [ "$quick" -eq 1 ]; then args+=(--benchmark_min_time=0.05); else args+=(--benchmark_min_time=0.5); fi
[ -n "$filter" ] && args+=(--benchmark_filter="$filter")

log "running mbok_bench ${args[*]} ${extra[*]:-}"
"$dir/bench/mbok_bench" "${args[@]}" "${extra[@]}"

log "ratios against the baselines of the same run ($dir/performance.md)"
"$dir/bench/mbok_bench_report" "$dir/results.json" "$dir/performance.md"
