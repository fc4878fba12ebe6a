#!/usr/bin/env bash
# mbok-run finetune end to end, on a random LLaMA checkpoint in Hugging Face layout:
#  1. --kernels 1 (the teacher converted on the fly), 30 steps with --eval-text: the student's
#     KL to the teacher on the eval text falls by 20 %+, bits flip, and `mbok-run perplexity` of the written
#     file prints the "perplexity after" the command printed;
#  2. --student FILE (mbok-convert, K = 2) finetunes and writes a file that runs;
#  3. resume: 8 steps in one run and 4 + 4 steps (--stop-after, then --resume) write
#     byte-identical mbok files;
#  4. bad options: exit code 2 and one line naming the problem.
# Usage: finetune_test.sh RUN CONVERT MAKE_RANDOM WORK_DIR. Exit 77 (skipped) without python3.
set -euo pipefail
run="$1" convert="$2" make_random="$3" work="$4"
py=/usr/bin/python3
[ -x "$py" ] || { echo "python3 is missing: skipped" >&2; exit 77; }
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
value() { sed -n "s/^$1: //p"; }

# A byte-level tokenizer (256 byte tokens + 2 specials) and a text with structure.
"$py" - <<'PY'
import json, random
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
m = dict(zip(bs, [chr(c) for c in cs]))
vocab = {m[b]: b for b in range(256)}
added = [{"id": 256 + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
          "normalized": False, "special": True} for i, s in enumerate(["<|begin_of_text|>", "<|end_of_text|>"])]
bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
       "pre_tokenizer": bl, "post_processor": bl, "decoder": bl,
       "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                 "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                 "vocab": vocab, "merges": []}}
json.dump(tok, open("tokenizer.json", "w"))
random.seed(3)
words = ["in", "the", "beginning", "god", "created", "heaven", "and", "earth", "light", "was", "good"]
open("text.txt", "w").write(" ".join(random.choice(words) for _ in range(1500)))
open("eval.txt", "w").write(" ".join(random.choice(words) for _ in range(200)))
PY
cat > config.json <<'JSON'
{"model_type": "llama", "vocab_size": 258, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
 "bos_token_id": 256, "eos_token_id": 257}
JSON
"$make_random" --config config.json --dtype f32 --shard-size 0 --std 0.15 --seed 4 --tokenizer tokenizer.json teacher -q

# 1. On the fly K = 1, with evaluation.
out="$("$run" finetune --teacher teacher --kernels 1 --text text.txt -c 32 -b 4 --steps 30 --lr 0.1 --scale-lr 3e-3 \
        --eval-text eval.txt -o k1.mbok -q)"
echo "$out"
teacher_ppl="$(echo "$out" | value "teacher perplexity")"
before="$(echo "$out" | value "perplexity before")"
after="$(echo "$out" | value "perplexity after")"
[ -n "$teacher_ppl" ] && [ -n "$before" ] && [ -n "$after" ] || fail "perplexities not printed"
kl_before="$(echo "$out" | value "eval kl before")"
kl_after="$(echo "$out" | value "eval kl after")"
"$py" -c "import sys; b, a = map(float, sys.argv[1:]); sys.exit(0 if a < 0.8 * b else 1)" "$kl_before" "$kl_after" \
  || fail "the KL to the teacher on the eval text did not fall by 20 % ($kl_before -> $kl_after)"
echo "$out" | grep -q "mean flip rate 0.0000%" && fail "no bit flipped"
[ -f k1.mbok ] || fail "no output file"
again="$("$run" perplexity -m k1.mbok --text eval.txt -c 32 -q | value perplexity)"
"$py" -c "import sys; a, b = map(float, sys.argv[1:]); sys.exit(0 if abs(a - b) <= 1e-4 * b else 1)" "$again" "$after" \
  || fail "mbok-run perplexity of the written file ($again) differs from the command's ($after)"

# 2. A converted student file.
"$convert" teacher k2.mbok -k 2 -q >/dev/null
"$run" finetune --teacher teacher --student k2.mbok --text text.txt -c 16 -b 2 --steps 3 -o k2-ft.mbok -q >/dev/null
"$run" info -m k2-ft.mbok | grep -q "boolean layers: 14" || fail "finetuned K = 2 file does not hold 14 Boolean layers"

# 3. Resume: 8 steps at once against 4 + 4.
common=(finetune --teacher teacher --kernels 2 --text text.txt -c 16 -b 2 --steps 8 --accumulator i8 -q)
"$run" "${common[@]}" -o full.mbok --checkpoint-dir ca --checkpoint-every 4 >/dev/null
"$run" "${common[@]}" -o split.mbok --checkpoint-dir cb --checkpoint-every 4 --stop-after 4 | grep -q "stopped at step 4" \
  || fail "--stop-after did not stop"
[ -f split.mbok ] && fail "a stopped run wrote its output"
"$run" "${common[@]}" -o split.mbok --resume cb --checkpoint-dir cb >/dev/null
cmp -s full.mbok split.mbok || fail "resumed run differs from the uninterrupted one"

# 4. Bad options: exit 2 with a message.
expect_error() {
  local what="$1"; shift
  set +e
  msg="$("$run" "$@" 2>&1 >/dev/null)"; rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "$what: exit code $rc, expected 2 ($msg)"
  echo "$msg" | grep -q "mbok-run: error:" || fail "$what: no error line ($msg)"
  echo "ok: $what: $msg"
}
base=(finetune --teacher teacher --text text.txt -c 16 --steps 2 -o bad.mbok -q)
expect_error "both students" "${base[@]}" --kernels 1 --student k2.mbok
expect_error "no student" "${base[@]}"
expect_error "context too long" finetune --teacher teacher --kernels 1 --text text.txt -c 4096 --steps 2 -o bad.mbok
expect_error "bad accumulator" "${base[@]}" --kernels 1 --accumulator i4
expect_error "missing teacher" finetune --teacher nowhere --kernels 1 --text text.txt -c 16 --steps 2 -o bad.mbok
expect_error "missing resume" "${base[@]}" --kernels 1 --resume nowhere
expect_error "resume with other settings" "${common[@]}" -o bad.mbok --resume cb --lr 0.5
expect_error "checkpoint-every without dir" "${base[@]}" --kernels 1 --checkpoint-every 2
expect_error "teacher is an mbok file" finetune --teacher k2.mbok --kernels 1 --text text.txt -c 16 --steps 2 -o bad.mbok
[ -f bad.mbok ] && fail "a failed run wrote its output"
echo "finetune tests passed"
