#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (installs what it needs as root): builds the
# tiny-LLaMA example and mbok's tools, runs the example's whole pipeline (learn a byte-level
# BPE tokenizer on the King James Bible, pretrain a float LLaMA teacher and save it as a
# Hugging Face directory, convert it to Boolean kernels as mbok files, finetune in the Boolean
# domain, evaluate, report), then walks a user's road on its files with the tools themselves:
# mbok-convert on the teacher's directory, mbok-run perplexity on the teacher and on the
# converted and finetuned files, mbok-run generate from the finetuned one.
# Arguments are passed to the example (try --help or --quick).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$MBOK_ROOT"

ensure_packages "${MBOK_BUILD_PACKAGES[@]}" bible-kjv gnuplot-nox

log "building (Release)"
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DMBOK_BUILD_TESTS=OFF \
  -DMBOK_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/demo -j"$MBOK_JOBS" --target tiny_transformer mbok-convert mbok-run
log "running the tiny-LLaMA pipeline"
build/demo/examples/tiny_transformer/tiny_transformer "$@"

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
if [ -z "$teacher" ] || [ ! -f "$out/mbok-k2.mbok" ]; then exit 0; fi
teacher=${teacher%/}
context=$(sed -n 's/.*"max_position_embeddings": *\([0-9]*\).*/\1/p' "$teacher/config.json")
bin=build/demo/tools
step() { printf '\n$ %s\n' "$*"; "$@"; }
log "the user's road with mbok's tools on the pipeline's files"
step "$bin/mbok-run" info -m "$teacher"
step "$bin/mbok-convert" -q "$teacher" "$out/converted-k2.mbok" --kernels 2
step "$bin/mbok-run" perplexity -m "$teacher" --text "$out/valid.txt" -c "$context" -q
step "$bin/mbok-run" perplexity -m "$out/converted-k2.mbok" --text "$out/valid.txt" -c "$context" -q
step "$bin/mbok-run" perplexity -m "$out/mbok-k2.mbok" --text "$out/valid.txt" -c "$context" -q
# mbok-run generate stops at the context (no sliding window): the prompt plus -n fit in it.
step "$bin/mbok-run" generate -m "$out/mbok-k2.mbok" -p "And God said unto" -n $((context - 8)) \
  --temperature 0.8 --seed 42 --no-special-tokens
