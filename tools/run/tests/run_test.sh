#!/usr/bin/env bash
# mbok-run end to end, on random LLaMA checkpoints in Hugging Face layout:
#  1. `perplexity` of the float model equals reference_llama.py (numpy, float64, its own RoPE,
#     attention and SwiGLU) to 1e-4 relative, on three checkpoints: GQA with an explicit
#     head_dim and llama3 RoPE scaling (BF16, sharded), multi-head with a tied head (F32, one
#     file), and F16;
#  2. a converted model (mbok-convert, K = 2 and K = 1): int8 and float activations give
#     perplexities within 0.01 nats of mean log-likelihood of each other (the int8 path's
#     per-token quantization of the layer inputs; measured about 0.001), and so does the int8
#     head (`--head int8`) against the float head; packed files (`mbok-convert --packed`) give
#     the same int8 perplexity exactly and unpack to the original file byte for byte;
#  3. `generate` streams the prompt and the continuation and reports prefill and decode
#     tokens/s; sampling with one seed repeats exactly; `bench` reports pp, tg and bandwidth;
#  4. bad input: a missing model, a truncated tokenizer.json, a context beyond the model's
#     positions, a text shorter than one window: exit code 2 and one line naming the problem.
# Usage: run_test.sh RUN CONVERT MAKE_RANDOM WORK_DIR. Exit 77 (skipped) without numpy.
set -euo pipefail
run="$1" convert="$2" make_random="$3" work="$4"
here="$(cd "$(dirname "$0")" && pwd)"
py=/usr/bin/python3
if ! "$py" -c 'import numpy' 2>/dev/null; then
  echo "numpy for /usr/bin/python3 is missing (Debian: python3-numpy): skipped" >&2
  exit 77
fi
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
value() { sed -n "s/^$1: //p"; }
# rel_close A B TOL: |A - B| <= TOL * |B|
rel_close() { "$py" -c "import sys; a, b, t = map(float, sys.argv[1:]); sys.exit(0 if abs(a - b) <= t * abs(b) else 1)" "$@"; }
# nll_close A B TOL: |ln A - ln B| <= TOL
nll_close() { "$py" -c "import sys, math; a, b, t = map(float, sys.argv[1:]); sys.exit(0 if abs(math.log(a) - math.log(b)) <= t else 1)" "$@"; }

"$py" "$here/reference_llama.py" --write-tokenizer tokenizer.json
# 1500 bytes of text with non-ASCII letters, digits and whitespace runs.
"$py" - <<'PY'
import random
random.seed(7)
words = ["In", "the", "beginning", "God", "created", "heaven", "earth", "naïve", "façade", "Straße", "мир",
         "λόγος", "12345", "3.14", "don't", "—", "\n\n", "  ", "\t"]
text = " ".join(random.choice(words) for _ in range(400))
open("text.txt", "w", encoding="utf-8").write(text)
PY
head -c 1500 text.txt > short.txt && mv short.txt text.txt

cat > gqa.json <<'JSON'
{"model_type": "llama", "vocab_size": 258, "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 24, "max_position_embeddings": 256,
 "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "bos_token_id": 256, "eos_token_id": 257,
 "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 32}}
JSON
cat > mha.json <<'JSON'
{"model_type": "llama", "vocab_size": 258, "hidden_size": 48, "intermediate_size": 128, "num_hidden_layers": 3,
 "num_attention_heads": 3, "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "tie_word_embeddings": true,
 "bos_token_id": 256, "eos_token_id": 257}
JSON
"$make_random" --config gqa.json --dtype bf16 --shard-size 40KB --std 0.2 --seed 1 --tokenizer tokenizer.json gqa -q
"$make_random" --config mha.json --dtype f32 --shard-size 0 --std 0.2 --seed 2 --tokenizer tokenizer.json mha -q
"$make_random" --config gqa.json --dtype f16 --std 0.2 --seed 3 --tokenizer tokenizer.json gqa16 -q

for model in gqa mha gqa16; do
  ours="$("$run" perplexity -m "$model" --text text.txt -c 100 -q)"
  ref="$("$py" "$here/reference_llama.py" --model "$model" --text text.txt --context 100)"
  a="$(value perplexity <<<"$ours")" b="$(value perplexity <<<"$ref")"
  [ "$(value tokens <<<"$ours")" = "$(value tokens <<<"$ref")" ] || fail "$model: token counts differ"
  rel_close "$a" "$b" 1e-4 || fail "$model: perplexity $a, reference $b"
  echo "$model: float perplexity $a, reference $b"
done

for k in 2 1; do
  "$convert" gqa "gqa-k$k.mbok" -k "$k" -q >/dev/null
  i="$("$run" perplexity -m "gqa-k$k.mbok" --text text.txt -c 100 -q --activations int8 | value perplexity)"
  f="$("$run" perplexity -m "gqa-k$k.mbok" --text text.txt -c 100 -q --activations float | value perplexity)"
  nll_close "$i" "$f" 0.01 || fail "K=$k: int8 perplexity $i, float $f"
  echo "converted K=$k: int8 perplexity $i, float $f"
done
# Packed files (the inference form, both layouts): the same int8 perplexity to the last digit
# (the packing is a bijection and the products are exact), and back to bits byte for byte.
for layout in interleave4 lanes16; do
  "$convert" gqa-k2.mbok "packed-$layout.mbok" --packed "$layout" -q >/dev/null
  p="$("$run" perplexity -m "packed-$layout.mbok" --text text.txt -c 100 -q --activations int8 |
    value perplexity)"
  k2="$("$run" perplexity -m gqa-k2.mbok --text text.txt -c 100 -q --activations int8 | value perplexity)"
  [ "$p" = "$k2" ] || fail "packed ($layout): int8 perplexity $p, bits $k2"
done
"$convert" packed-lanes16.mbok unpacked.mbok -q >/dev/null
cmp -s unpacked.mbok gqa-k2.mbok || fail "packed -> bits: the file differs from the original"
echo "packed files: int8 perplexity $p in both layouts; unpacked file identical"
# The int8 head (weights quantized per row, half a step of max|w|/127 at most): within 0.01
# nats of the float head on the same model.
h="$("$run" perplexity -m gqa-k1.mbok --text text.txt -c 100 -q --head int8 | value perplexity)"
nll_close "$h" "$i" 0.01 || fail "int8 head: perplexity $h, float head $i"
echo "converted K=1: int8 head perplexity $h, float head $i"

out="$("$run" generate -m gqa-k2.mbok -p "In the" -n 12 --ignore-eos 2>err.txt)"
[ "${out#In the}" != "$out" ] || fail "generate: output does not start with the prompt"
grep -q '^prefill: [0-9]* tokens in .* tokens/s)$' err.txt || fail "generate: no prefill line"
grep -q '^decode: 11 tokens in .* tokens/s)$' err.txt || fail "generate: no decode line for 11 steps"
s1="$("$run" generate -m gqa -p "God" -n 16 --temperature 0.9 --top-k 50 --top-p 0.95 --seed 5 --ignore-eos 2>/dev/null)"
s2="$("$run" generate -m gqa -p "God" -n 16 --temperature 0.9 --top-k 50 --top-p 0.95 --seed 5 --ignore-eos 2>/dev/null)"
[ "$s1" = "$s2" ] || fail "generate: one seed gave two texts"

b="$("$run" bench -m gqa-k2.mbok -p 16 -n 8 -r 1)"
grep -q '^pp16: [0-9.]* tokens/s$' <<<"$b" || fail "bench: no pp16 line"
grep -q '^tg8: [0-9.]* tokens/s$' <<<"$b" || fail "bench: no tg8 line"
grep -q '^read bandwidth: [0-9.]* GB/s' <<<"$b" || fail "bench: no bandwidth line"
grep -q '^resident after the run: [0-9.]* MB' <<<"$b" || fail "bench: no resident memory line"

# expect_error PATTERN CMD...: exit code 2 and one line on stderr matching PATTERN.
expect_error() {
  local pattern="$1"; shift
  local rc=0
  "$@" >/dev/null 2>err.txt || rc=$?
  [ "$rc" -eq 2 ] || fail "'$*' exited $rc, expected 2"
  [ "$(wc -l <err.txt)" -eq 1 ] || fail "'$*' printed more than one line: $(cat err.txt)"
  grep -q -- "$pattern" err.txt || fail "'$*': '$(cat err.txt)' does not name '$pattern'"
}
expect_error "neither a Hugging Face checkpoint directory nor an mbok file" "$run" perplexity -m missing --text text.txt -c 10
cp -r gqa broken && head -c 300 tokenizer.json > broken/tokenizer.json
expect_error "tokenizer" "$run" perplexity -m broken --text text.txt -c 10
expect_error "max_position_embeddings" "$run" perplexity -m gqa --text text.txt -c 1000
head -c 50 text.txt > tiny.txt
expect_error "fewer than one window" "$run" perplexity -m gqa --text tiny.txt -c 100
expect_error "cannot open text file" "$run" perplexity -m gqa --text nowhere.txt -c 100
echo "mbok-run: all checks passed"
