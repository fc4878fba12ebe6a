#!/usr/bin/env bash
# Writes the models of the end-to-end comparison with ik_llama.cpp into OUT: a random
# LLaMA-shaped checkpoint per shape (Hugging Face layout, BF16), its mbok files at K = 1 and
# K = 2, and the same weights as GGUF files of ik_llama.cpp's IQ2_BN_R4 (2 bits) and
# Q1_0_G128 (1.125 bits) types, quantized by its own llama-quantize with its default choices
# for the other tensors (Q6_K head, IQ4_NL embedding).
#
# Usage: bench/peers/prepare_models.sh MBOK_BUILD IK_LLAMA_SRC IK_LLAMA_BUILD OUT [SHAPES]
#   MBOK_BUILD      a build folder of this project (tools/mbok-convert, ...)
#   IK_LLAMA_SRC    a checkout of github:ikawrakow/ik_llama.cpp (its gguf-py is used)
#   IK_LLAMA_BUILD  its build folder (bin/llama-quantize)
#   SHAPES          presets of mbok-make-random-llama, default "1b 7b"
# Disk: about 13.5 GB (BF16) + 13.5 GB (F16 GGUF, removed after quantizing) + 4 GB at 7B.
set -euo pipefail
[[ $# -ge 4 ]] || { sed -n '2,14p' "$0"; exit 2; }
mbok=$1 ik_src=$2 ik_build=$3 out=$4 shapes=${5:-"1b 7b"}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
for s in $shapes; do
  [[ -f $out/hf-$s/config.json ]] ||
    "$mbok/tools/mbok-make-random-llama" --preset "$s" "$out/hf-$s"
  for k in 1 2; do
    [[ -f $out/k$k-$s.mbok ]] ||
      "$mbok/tools/mbok-convert" --kernels "$k" "$out/hf-$s" "$out/k$k-$s.mbok"
  done
  if [[ ! -f $out/iq2_bn_r4-$s.gguf || ! -f $out/q1_0_g128-$s.gguf ]]; then
    [[ -f $out/f16-$s.gguf ]] ||
      /usr/bin/python3 "$here/hf_to_gguf.py" --gguf-py "$ik_src/gguf-py" "$out/hf-$s" \
        "$out/f16-$s.gguf"
    "$ik_build/bin/llama-quantize" "$out/f16-$s.gguf" "$out/iq2_bn_r4-$s.gguf" IQ2_BN_R4
    # Q1_0_G128 has no ftype name of its own: the IQ2_BN recipe with every block matrix
    # overridden, so the head and embedding get the same types as above.
    "$ik_build/bin/llama-quantize" \
      --custom-q "attn_[qkv]=q1_0_g128,attn_output=q1_0_g128,ffn_(gate|up|down)=q1_0_g128" \
      "$out/f16-$s.gguf" "$out/q1_0_g128-$s.gguf" IQ2_BN
    rm -f "$out/f16-$s.gguf"
  fi
done
ls -la "$out"
