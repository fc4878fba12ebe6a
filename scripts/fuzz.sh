#!/usr/bin/env bash
# Builds the libFuzzer targets of mbok's file readers (fuzz/*_fuzzer.cpp) with clang-19,
# AddressSanitizer and UndefinedBehaviorSanitizer in build-fuzz/, writes a seed corpus, and
# runs each target for MBOK_FUZZ_SECONDS seconds (default 30). Exits non-zero when a target
# crashes (the input is kept in build-fuzz/artifacts/). Skips, with exit code 77, only when
# clang-19 or its libFuzzer runtime (libclang-rt-19-dev) is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

seconds="${MBOK_FUZZ_SECONDS:-30}"
cxx="${MBOK_FUZZ_CXX:-clang++-19}"
out="$root/build-fuzz"

if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "fuzz: skipped: $cxx not found (install clang-19 and libclang-rt-19-dev)"
  exit 77
fi
mkdir -p "$out"
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' >"$out/probe.cpp"
if ! "$cxx" -fsanitize=fuzzer "$out/probe.cpp" -o "$out/probe" 2>/dev/null; then
  echo "fuzz: skipped: $cxx cannot link libFuzzer (install libclang-rt-19-dev)"
  exit 77
fi

eigen="$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)"
common=(-std=c++17 -g -O1 -Iinclude $eigen -Wall -Wextra)
targets=(safetensors_fuzzer mbok_fuzzer)

echo "fuzz: building in $out"
"$cxx" "${common[@]}" -fsanitize=address,undefined fuzz/make_seeds.cpp -o "$out/make_seeds"
pids=()
for t in "${targets[@]}"; do
  "$cxx" "${common[@]}" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all "fuzz/$t.cpp" -o "$out/$t" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
rm -rf "$out/seeds"
"$out/make_seeds" "$out/seeds"

# The targets run side by side (each fuzzer is one process), so the stage takes about
# MBOK_FUZZ_SECONDS whatever the number of targets on a machine with as many cores.
mkdir -p "$out/artifacts"
pids=()
for t in "${targets[@]}"; do
  mkdir -p "$out/corpus/$t"
  echo "fuzz: running $t for ${seconds}s"
  "$out/$t" -max_total_time="$seconds" -max_len=16384 -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" "$out/corpus/$t" \
    "$out/seeds/${t%_fuzzer}" >"$out/$t.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!targets[@]}"; do
  t="${targets[$i]}"
  if ! wait "${pids[$i]}"; then
    echo "fuzz: $t FAILED (log: $out/$t.log, inputs in $out/artifacts/)"
    tail -n 40 "$out/$t.log"
    status=1
  else
    echo "fuzz: $t ok: $(grep -E '^stat::number_of_executed_units' "$out/$t.log" | awk '{print $2}') runs, no crash"
  fi
done
exit $status
