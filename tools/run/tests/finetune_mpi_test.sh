#!/usr/bin/env bash
# mbok-run finetune --distributed, on a random tiny LLaMA (mbok-make-random-llama --preset tiny)
# with a small character-level tokenizer and a text drawn from a few words:
#  1. one rank under mpiexec writes the same bytes as the run without --distributed (f32
#     accumulators: a one-rank reduction is a copy, the same sums in the same order);
#  2. two ranks, a batch of 5 windows split 2 + 3: the eval KL and perplexity after
#     finetuning match the one-process run within a relative BOUND of 1e-4 (the float sums
#     run in another order, so the files differ in the low bits of some scales: measured,
#     both figures equal to the 6-7 digits printed; finetuning moves the KL by 50 %);
#  3. resume across rank counts and checkpoint layouts: 2 ranks stopped at step 6 (a sharded
#     checkpoint: a manifest without accumulators and one shard per rank) and resumed in one
#     process (which replaces it with one file and removes the shards); one process stopped
#     at 6 (one file) and resumed on 2 ranks; 2 ranks stopped at 4, resumed on 3 ranks
#     (uneven shares 1 + 2 + 2) to step 8 (3 new shards, the 2 old ones removed), then in one
#     process: each matches the uninterrupted run the same way; only rank 0 prints;
#  4. i8 accumulators on 2 ranks (another rounding stream per slice: a valid run, not the same
#     bits) lower the eval KL as one process does;
#  5. a batch smaller than the number of ranks: exit code 2 and one line naming it.
# Without MPI (MPIEXEC empty) it checks that --distributed is refused with a message naming it.
# Usage: finetune_mpi_test.sh RUN MAKE_RANDOM MPIEXEC WORK_DIR
set -euo pipefail
run="$1" make_random="$2" mpiexec="$3" work="$4"
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
value() { sed -n "s/^$1: //p"; }
# within A B BOUND: |A - B| <= BOUND |B|
within() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; exit !(d <= r * m) }'; }

# A character-level BPE tokenizer inside the preset's vocabulary (ids 0-2: unk, bos, eos).
chars="abcdefghijklmnopqrstuvwxyz "
vocab='"<unk>": 0, "<s>": 1, "</s>": 2'
for ((i = 0; i < ${#chars}; ++i)); do vocab+=", \"${chars:i:1}\": $((i + 3))"; done
cat >tokenizer.json <<JSON
{"version": "1.0", "truncation": null, "padding": null, "normalizer": null, "pre_tokenizer": null,
 "post_processor": null, "decoder": null,
 "added_tokens": [
  {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
 "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
           "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
           "vocab": {$vocab}, "merges": []}}
JSON
words=(in the beginning god created heaven and earth light was good)
text() { local n="$1" seed="$2" out="" i; RANDOM="$seed"; for ((i = 0; i < n; ++i)); do out+="${words[RANDOM % ${#words[@]}]} "; done; printf '%s' "$out"; }
text 900 3 >text.txt
text 120 5 >eval.txt
"$make_random" --preset tiny --dtype f32 --shard-size 0 --std 0.1 --seed 4 --tokenizer tokenizer.json teacher -q

common=(finetune --teacher teacher --kernels 2 --text text.txt --eval-text eval.txt -c 32 -b 5 --steps 12
        --lr 0.1 --scale-lr 3e-3 --accumulator f32 --activations float -q)

if [ -z "$mpiexec" ]; then
  set +e
  msg="$("$run" "${common[@]}" -o bad.mbok --distributed 2>&1 >/dev/null)"; rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "--distributed without MPI: exit code $rc, expected 2 ($msg)"
  echo "$msg" | grep -q "built without MPI" || fail "--distributed without MPI: message: $msg"
  echo "MPI not found: --distributed refused ($msg)"
  exit 0
fi

# 1. One rank against no MPI at all.
one="$("$run" "${common[@]}" -o one.mbok)"
echo "$one"
"$mpiexec" -n 1 "$run" "${common[@]}" -o d1.mbok --distributed >d1.log
cmp -s one.mbok d1.mbok || fail "one rank under mpiexec wrote another file than one process"

# 2. Two ranks, shares of 2 and 3 windows.
BOUND=1e-4
compare() {  # compare LOG WHAT: eval KL and perplexity after finetuning against the one-process run
  local log="$1" what="$2" key a b
  for key in "eval kl after" "perplexity after"; do
    a="$(value "$key" <"$log")" b="$(echo "$one" | value "$key")"
    [ -n "$a" ] || fail "$what: '$key' not printed"
    within "$a" "$b" "$BOUND" || fail "$what: $key $a, one process $b (bound $BOUND relative)"
    echo "ok: $what: $key $a (one process: $b)"
  done
}
"$mpiexec" -n 2 "$run" "${common[@]}" -o d2.mbok --distributed >d2.log
cat d2.log
grep -q "on 2 ranks" d2.log || fail "the 2-rank run does not say so"
[ "$(grep -c "^wrote " d2.log)" -eq 1 ] || fail "more than one rank printed"
compare d2.log "2 ranks"
# The eval KL fell: the comparison above is between runs that trained.
kb="$(echo "$one" | value "eval kl before")" ka="$(echo "$one" | value "eval kl after")"
awk -v b="$kb" -v a="$ka" 'BEGIN { exit !(a < 0.9 * b) }' || fail "eval KL did not fall by 10 % ($kb -> $ka)"

# 3. Resume across rank counts and layouts.
acc='"optimizer\.boolean\.[^"]*\.accumulator"'  # an accumulator tensor's key in a file's header
shards() {  # shards DIR P: DIR/finetune.ckpt is a manifest with exactly P shards of one save
  local n
  n="$(find "$1" -name 'finetune.ckpt.shard-*' | wc -l)"
  [ "$n" -eq "$2" ] || fail "$1: $n shard files, expected $2: $(ls "$1")"
  for ((r = 0; r < $2; ++r)); do
    [ -n "$(find "$1" -name "finetune.ckpt.shard-$r-of-$2-*")" ] || fail "$1: no shard $r of $2"
  done
  # The accumulator tensors live in the shards only (rank 0 never holds them all; the
  # manifest names them in its metadata, "mbok.slices.optimizer.boolean...", not as tensors).
  grep -aq "$acc" "$1/finetune.ckpt" && fail "$1: the manifest holds accumulators"
  for f in "$1"/finetune.ckpt.shard-*; do grep -aq "$acc" "$f" || fail "$f holds no accumulators"; done
  echo "ok: $1: a manifest and $2 shards"
}
"$mpiexec" -n 2 "$run" "${common[@]}" -o r21.mbok --distributed --checkpoint-dir c2 --stop-after 6 \
  | grep -q "stopped at step 6" || fail "2 ranks: --stop-after did not stop"
[ -f r21.mbok ] && fail "a stopped run wrote its output"
shards c2 2
"$run" "${common[@]}" -o r21.mbok --resume c2 --checkpoint-dir c2 >r21.log
compare r21.log "2 ranks, resumed in one process"
[ -z "$(find c2 -name 'finetune.ckpt.shard-*')" ] || fail "the one-process save left the shards"
grep -aq "$acc" c2/finetune.ckpt || fail "the one-process checkpoint holds no accumulators"
"$run" "${common[@]}" -o r12.mbok --checkpoint-dir c1 --stop-after 6 >/dev/null
"$mpiexec" -n 2 "$run" "${common[@]}" -o r12.mbok --distributed --resume c1 --checkpoint-dir c1 >r12.log
compare r12.log "one process, resumed on 2 ranks"
shards c1 2
"$mpiexec" -n 2 "$run" "${common[@]}" -o r231.mbok --distributed --checkpoint-dir c3 --stop-after 4 >/dev/null
shards c3 2
"$mpiexec" -n 3 "$run" "${common[@]}" -o r231.mbok --distributed --resume c3 --checkpoint-dir c3 \
  --stop-after 4 | grep -q "stopped at step 8" || fail "3 ranks: the resumed run did not stop at 8"
shards c3 3
"$run" "${common[@]}" -o r231.mbok --resume c3 --checkpoint-dir c3 >r231.log
grep -q "resuming at step 8" r231.log || grep -q "steps 8\.\.12" r231.log || fail "not resumed at step 8"
compare r231.log "2 ranks, then 3 ranks, then one process"

# 4. i8 accumulators on 2 ranks.
"$mpiexec" -n 2 "$run" "${common[@]/f32/i8}" -o i8.mbok --distributed >i8.log
kb="$(value "eval kl before" <i8.log)" ka="$(value "eval kl after" <i8.log)"
awk -v b="$kb" -v a="$ka" 'BEGIN { exit !(a < 0.9 * b) }' || fail "i8 on 2 ranks: eval KL did not fall by 10 % ($kb -> $ka)"
echo "ok: i8 on 2 ranks: eval kl $kb -> $ka"

# 5. Fewer windows than ranks.
set +e
msg="$("$mpiexec" -n 2 "$run" finetune --teacher teacher --kernels 1 --text text.txt -c 32 -b 1 --steps 2 \
       -o bad.mbok --distributed -q 2>&1 >/dev/null)"; rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a batch of 1 on 2 ranks ran"
echo "$msg" | grep -q "smaller than the 2 ranks" || fail "batch of 1 on 2 ranks: message: $msg"
[ -f bad.mbok ] && fail "a failed run wrote its output"
echo "finetune MPI tests passed"
