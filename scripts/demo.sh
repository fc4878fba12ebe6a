#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (installs what it needs as root): builds the
# tiny-transformer example and runs its whole pipeline (pretrain a teacher on the King James
# Bible, convert it to Boolean kernels, finetune in the Boolean domain, evaluate, report).
# Arguments are passed to the example (try --help or --quick).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$MBOK_ROOT"

ensure_packages "${MBOK_BUILD_PACKAGES[@]}" bible-kjv gnuplot-nox

log "building (Release)"
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DMBOK_BUILD_TESTS=OFF \
  -DMBOK_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/demo -j"$MBOK_JOBS" --target tiny_transformer
log "running the tiny-transformer pipeline"
exec build/demo/examples/tiny_transformer/tiny_transformer "$@"
