#!/usr/bin/env bash
# ThreadSanitizer stage: builds the [threads] tests (the threaded products, the fused forwards
# and the Boolean optimizer on one thread and on several) with clang-19 -fsanitize=thread and
# LLVM's OpenMP runtime, runs them, and fails on any race report.
#
# clang + libomp, not GCC + libgomp: libgomp is not instrumented and its barriers are
# invisible to TSan, so every parallel region reports false races. libomp's Archer tool
# (libarcher.so, OMP_TOOL_LIBRARIES) tells TSan about OpenMP's synchronisation instead.
# Only the test files that hold [threads] tests are compiled (one binary, no CMake).
#
# Usage: scripts/test_tsan.sh [build folder, default build/tsan]
# Exit: 0 clean, 1 build failure or race report, 77 skipped (prints "SKIPPED: <reason>").
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/build/tsan}"
cxx="${MBOK_TSAN_CXX:-clang++-19}"

skip() {
  echo "SKIPPED: $*"
  exit 77
}

command -v "$cxx" >/dev/null 2>&1 || skip "$cxx not found (install clang-19)"

# LLVM's OpenMP runtime (Debian: libomp-dev): omp.h, libomp.so and, if present, libarcher.so,
# from the newest LLVM that has them.
omp_lib=""
omp_header=""
for dir in $(printf '%s\n' /usr/lib/llvm-*/lib | sort -t- -k2 -n -r); do
  [[ -e "$dir/libomp.so" ]] || continue
  for header in "$dir"/clang/*/include/omp.h "$dir"/../include/omp.h; do
    if [[ -e "$header" ]]; then
      omp_lib="$dir"
      omp_header="$header"
      break 2
    fi
  done
done
[[ -n "$omp_lib" ]] || skip "LLVM's OpenMP runtime not found (install libomp-dev)"
[[ -e /usr/include/eigen3/Eigen/Core ]] || skip "Eigen not found in /usr/include/eigen3"

catch_defs=()
catch_libs=()
if [[ -e /usr/include/catch2/catch_all.hpp ]]; then
  catch_defs=(-DMBOK_CATCH2_V3=1)
  catch_libs=(-lCatch2Main -lCatch2)
elif [[ -e /usr/include/catch2/catch.hpp ]]; then
  catch_defs=(-DMBOK_CATCH2_V2=1)
else
  skip "Catch2 not found"
fi

mkdir -p "$out/include"
# omp.h alone: the rest of that LLVM's resource headers must not shadow clang-19's own.
ln -sf "$omp_header" "$out/include/omp.h"

sources=(
  tests/main.cpp
  tests/unit/kernels_float/threads_float_test.cpp
  tests/unit/kernels_int/threads_int_test.cpp
  tests/unit/layer/threads_test.cpp
  tests/unit/layer/threads_training_test.cpp
)
launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(ccache)
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=thread -fopenmp=libomp
       -Wall -Wextra -Wpedantic -Werror
       -I"$out/include" -I"$root/include" -I"$root/tests" -isystem /usr/include/eigen3
       "${catch_defs[@]}")

echo "== TSan: compiling ${#sources[@]} files with $cxx (OpenMP from $omp_lib)"
objects=()
pids=()
for src in "${sources[@]}"; do
  obj="$out/$(echo "$src" | tr '/' '_').o"
  objects+=("$obj")
  "${launcher[@]}" "$cxx" "${flags[@]}" -c "$root/$src" -o "$obj" &
  pids+=($!)
  # Two compilations at a time.
  if (( ${#pids[@]} >= 2 )); then
    wait "${pids[0]}"
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done

binary="$out/mbok_threads_tsan"
"$cxx" -fsanitize=thread -fopenmp=libomp "${objects[@]}" -o "$binary" -L"$omp_lib" \
  -Wl,-rpath,"$omp_lib" "${catch_libs[@]}"

symbolizer=""
for candidate in "$(command -v llvm-symbolizer-19 || true)" /usr/lib/llvm-19/bin/llvm-symbolizer "$(command -v llvm-symbolizer || true)"; do
  if [[ -n "$candidate" && -x "$candidate" ]]; then
    symbolizer="external_symbolizer_path=$candidate"
    break
  fi
done
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 ignore_noninstrumented_modules=1 suppressions=$root/tests/tsan.supp $symbolizer ${TSAN_OPTIONS:-}"
if [[ -e "$omp_lib/libarcher.so" ]]; then
  export OMP_TOOL_LIBRARIES="$omp_lib/libarcher.so"
  export ARCHER_OPTIONS="verbose=0"
fi
export OMP_NUM_THREADS=4
# No ISA override: every ISA this CPU has runs (the tests loop over them).
unset MBOK_ISA

echo "== TSan: running [threads]"
log="$out/tsan.log"
set +e
"$binary" -w NoTests "[threads]" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if grep -q "WARNING: ThreadSanitizer" "$log"; then
  echo "FAILED: ThreadSanitizer reported a race (see $log)"
  exit 1
fi
if (( status != 0 )); then
  echo "FAILED: the [threads] tests exited with $status (see $log)"
  exit 1
fi
echo "== TSan: clean"
