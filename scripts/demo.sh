#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (installs what it needs as root): builds the
# tiny-LLaMA example and mbok's tools, runs the example's whole pipeline (learn a byte-level
# BPE tokenizer on the King James Bible, pretrain a float LLaMA teacher and save it as a
# Hugging Face directory, convert it to Boolean kernels as mbok files, finetune in the Boolean
# domain, evaluate, report), then walks a user's road on its files with the tools themselves:
# mbok-convert on the teacher's directory, mbok-run perplexity on the teacher and on the
# converted and finetuned files (the first 40 kB of the held-out text), mbok-run generate from
# the finetuned one.
# Arguments are passed to the example (try --help or --quick). At the end it prints the wall
# time of each phase (build, pipeline, tools).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$MBOK_ROOT"

ensure_packages "${MBOK_BUILD_PACKAGES[@]}" bible-kjv gnuplot-nox

# OpenMP threads sleep when idle instead of spinning: on a machine shared with other jobs a
# spinning thread takes a core from them and from the run's own other threads.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
export GOMP_SPINCOUNT="${GOMP_SPINCOUNT:-0}"

phases=()
started=$SECONDS
phase_end() { phases+=("$(printf '%-12s %4d s' "$1" $((SECONDS - started)))"); started=$SECONDS; }

log "building (Release)"
# Ninja and ccache when present (a rebuild then takes seconds); the example compiles as one
# unity translation unit per half of its files (tiny_transformer's CMakeLists.txt).
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
[ -f build/demo/CMakeCache.txt ] && generator=()  # keep the generator the folder has
launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build/demo "${generator[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DMBOK_BUILD_TESTS=OFF -DMBOK_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/demo -j"$MBOK_JOBS" --target tiny_transformer
phase_end build
# The pipeline runs on one thread: mbok-convert and mbok-run, needed only at the end, compile
# on the other core meanwhile (after the example's build: one build at a time in the folder).
cmake --build build/demo -j1 --target mbok-convert mbok-run >build/demo/tools-build.log 2>&1 &
tools_build=$!
trap 'kill "$tools_build" 2>/dev/null || true' EXIT  # a failed pipeline stops it too
log "running the tiny-LLaMA pipeline (mbok-convert and mbok-run build meanwhile)"
build/demo/examples/tiny_transformer/tiny_transformer "$@"
phase_end pipeline
if ! wait "$tools_build"; then
  cat build/demo/tools-build.log >&2
  echo "error: building mbok-convert and mbok-run failed (build/demo/tools-build.log)" >&2
  exit 1
fi
trap - EXIT
phase_end "tools build"

# The output folder the example wrote (its --out, else the default).
out=tiny_transformer_out
args=("$@")
for ((i = 0; i < ${#args[@]}; ++i)); do
  case "${args[i]}" in
    --out) out=${args[i + 1]:-$out} ;;
    --out=*) out=${args[i]#--out=} ;;
  esac
done
# Only after a whole run (no subcommand): the teacher and the finetuned K = 2 model exist.
teacher=$(ls -d "$out"/teacher-*/ 2>/dev/null | head -n 1)
if [ -z "$teacher" ] || [ ! -f "$out/mbok-k2.mbok" ]; then
  printf '\nwall time: %s\n' "${phases[@]}"
  exit 0
fi
teacher=${teacher%/}
context=$(sed -n 's/.*"max_position_embeddings": *\([0-9]*\).*/\1/p' "$teacher/config.json")
bin=build/demo/tools
step() { printf '\n$ %s\n' "$*"; "$@"; }
log "the user's road with mbok's tools on the pipeline's files"
step "$bin/mbok-run" info -m "$teacher"
step "$bin/mbok-convert" -q "$teacher" "$out/converted-k2.mbok" --kernels 2
# The first 40 kB of the held-out text (whole lines): the float teacher's perplexity in
# mbok-run took 90 s of CPU over the whole 215 kB (the pipeline measures all of it in process).
head -c 40000 "$out/valid.txt" | sed '$d' >"$out/valid-head.txt"
step "$bin/mbok-run" perplexity -m "$teacher" --text "$out/valid-head.txt" -c "$context" -q
step "$bin/mbok-run" perplexity -m "$out/converted-k2.mbok" --text "$out/valid-head.txt" -c "$context" -q
step "$bin/mbok-run" perplexity -m "$out/mbok-k2.mbok" --text "$out/valid-head.txt" -c "$context" -q
# mbok-run generate stops at the context (no sliding window): the prompt plus -n fit in it.
step "$bin/mbok-run" generate -m "$out/mbok-k2.mbok" -p "And God said unto" -n $((context - 8)) \
  --temperature 0.8 --seed 42 --no-special-tokens
phase_end tools
log "wall time per phase"
printf '%s\n' "${phases[@]}"
