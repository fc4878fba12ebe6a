#!/usr/bin/env bash
# Cross-compiles mbok's tests for AArch64 (g++-aarch64-linux-gnu) and runs them under
# qemu-aarch64 through ctest, so the NEON products are checked on an x86-64 host:
#   1. configure BUILD_DIR (default build-neon; first argument) with
#      cmake/toolchains/aarch64-linux-gnu.cmake, -O2, no benchmarks, tools or examples;
#   2. build every test area (mbok_all_tests); MBOK_NEON_AREAS="core kernels_neon ..." builds
#      only those areas (kernels_neon is always added), for quicker local runs;
#   3. ctest on qemu's "max" CPU (NEON + the dot-product extension: SDOT int8 path), then the
#      NEON-specific areas again on a Cortex-A72 model (no dot-product extension: the plain
#      int8 path and its detection);
#   4. asserts from the test output that the NEON products, not the portable ones, ran.
# Tests tagged [slow] are left out under the emulator (tests/CMakeLists.txt).
# Exits non-zero on any failure; exits 77 (skipped, with a message) only when the cross
# compiler or qemu-aarch64 is missing.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

cxx="${MBOK_AARCH64_CXX:-aarch64-linux-gnu-g++}"
qemu="${MBOK_QEMU_AARCH64:-qemu-aarch64}"
sysroot=/usr/aarch64-linux-gnu
for tool in "$cxx" "$qemu"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "test_neon: SKIPPED: '$tool' not found (install g++-aarch64-linux-gnu and qemu-user)"
    exit 77
  fi
done
if [ ! -d "$sysroot/lib" ]; then
  echo "test_neon: SKIPPED: no AArch64 runtime under $sysroot (install libc6-dev-arm64-cross)"
  exit 77
fi
export MBOK_AARCH64_CXX="$cxx" MBOK_QEMU_AARCH64="$qemu"

build="${1:-$MBOK_ROOT/build-neon}"
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
start=$SECONDS

log "configure $build (AArch64 cross build, -O2)"
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
# A folder configured by another generator than the one asked for now cannot be reused.
if [ -f "$build/CMakeCache.txt" ] && [ -n "${CMAKE_GENERATOR:-}" ] &&
  ! grep -q "^CMAKE_GENERATOR:INTERNAL=${CMAKE_GENERATOR}\$" "$build/CMakeCache.txt"; then
  rm -rf "$build"
fi
cmake -S "$MBOK_ROOT" -B "$build" \
  -DCMAKE_TOOLCHAIN_FILE="$MBOK_ROOT/cmake/toolchains/aarch64-linux-gnu.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
  -DMBOK_BUILD_BENCHMARKS=OFF -DMBOK_BUILD_TOOLS=OFF -DMBOK_BUILD_EXAMPLES=OFF "${launcher[@]}" >/dev/null

areas="${MBOK_NEON_AREAS:-all}"
# kernels_neon always runs: the check that the NEON path ran (step 4) reads its output.
case " $areas " in *" all "* | *" kernels_neon "*) ;; *) areas="$areas kernels_neon" ;; esac
if [ "$areas" = all ]; then
  areas=""
  for d in "$MBOK_ROOT"/tests/unit/*/; do
    if compgen -G "$d*.cpp" >/dev/null; then areas="$areas $(basename "$d")"; fi
  done
  targets=(mbok_all_tests)
else
  targets=()
  for a in $areas; do
    if [ ! -d "$MBOK_ROOT/tests/unit/$a" ]; then
      echo "test_neon: no test area tests/unit/$a" >&2
      exit 1
    fi
    targets+=("mbok_${a}_tests")
  done
fi
log "build ${targets[*]} (-j$MBOK_JOBS)"
cmake --build "$build" -j"$MBOK_JOBS" --target "${targets[@]}"

area_regex="^($(echo $areas | tr ' ' '|'))\$"
log "ctest under $qemu -cpu max (NEON + dot product): $area_regex, isa-env-* and isa-tier-*"
(cd "$build" && QEMU_CPU=max MBOK_EXPECT_DOTPROD=1 \
  ctest --output-on-failure --no-tests=error -j"$MBOK_JOBS" -R "$area_regex|^isa-env-|^isa-tier-")

# The NEON-specific areas once more on a CPU model without the dot-product extension.
no_dot=()
for a in $areas; do
  case "$a" in core | kernels_int | kernels_neon) no_dot+=("$a") ;; esac
done
if [ ${#no_dot[@]} -gt 0 ]; then
  no_dot_regex="^($(IFS='|'; echo "${no_dot[*]}"))\$"
  log "ctest under $qemu -cpu cortex-a72 (NEON, no dot product): $no_dot_regex"
  (cd "$build" && QEMU_CPU=cortex-a72 MBOK_EXPECT_DOTPROD=0 \
    ctest --output-on-failure --no-tests=error -j"$MBOK_JOBS" -R "$no_dot_regex")
fi

# The tests already require the NEON tier on AArch64; this shows it from outside, for both
# CPU models, and fails if the binary somehow ran another path.
neon_bin="$build/tests/mbok_kernels_neon_tests"
for cpu_expect in max:sdot cortex-a72:plain; do
  cpu="${cpu_expect%%:*}" expect="${cpu_expect##*:}"
  log "NEON path check on -cpu $cpu"
  out="$("$qemu" -L "$sysroot" -cpu "$cpu" "$neon_bin" -w NoTests "[isa]" 2>&1)" || {
    printf '%s\n' "$out"
    echo "test_neon: FAILED: NEON tier check on $cpu" >&2
    exit 1
  }
  line="$(printf '%s\n' "$out" | grep -o 'NEON products active; int8 variant: [a-z]*' || true)"
  echo "  $line"
  if [ "$line" != "NEON products active; int8 variant: $expect" ]; then
    echo "test_neon: FAILED: expected the NEON products with the $expect int8 variant on $cpu" >&2
    exit 1
  fi
done

log "test_neon: all passed in $((SECONDS - start)) s"
