# Runs mbok-convert on a small generated model: fixed K, a bit budget with importance weights
# and a JSON report (checked against the converted file), and bad options and files, which
# must fail with exit code 2 and one line on stderr.
# Then the same on Hugging Face checkpoint directories made by mbok-make-random-llama: a
# sharded BF16 one with a tokenizer, a one-file F32 one, and malformed ones (a missing shard,
# a truncated shard, a config.json that disagrees with the tensors, a missing config key, an
# unknown model type), which must fail the same way and write nothing.
# Inputs: CONVERT, FIXTURE, MAKE_RANDOM (executables), WORK (a scratch folder).
cmake_minimum_required(VERSION 3.19)  # string(JSON), quoted arguments never dereferenced
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
set(model "${WORK}/model.safetensors")

function(run expected_rc)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL expected_rc)
    message(FATAL_ERROR "'${ARGN}' exited with ${rc}, expected ${expected_rc}\nstdout:\n${out}\nstderr:\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()

function(expect_in text what)
  string(FIND "${text}" "${what}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "expected '${what}' in:\n${text}")
  endif()
endfunction()

# A bad invocation: exit 2, exactly one line on stderr naming the problem.
function(expect_usage_error what)
  run(2 ${ARGN})
  string(REGEX MATCHALL "\n" newlines "${err}")
  list(LENGTH newlines lines)
  if(NOT lines EQUAL 1 OR NOT err MATCHES "^mbok-convert: error: ")
    message(FATAL_ERROR "'${ARGN}': expected one error line on stderr, got:\n${err}")
  endif()
  expect_in("${err}" "${what}")
endfunction()

run(0 "${FIXTURE}" make "${model}")

# Fixed K: three matrices converted; embeddings and head kept.
run(0 "${CONVERT}" "${model}" "${WORK}/k2.mbok" --kernels 2 --quiet --report "${WORK}/k2.json")
message(STATUS "mbok-convert --kernels 2:\n${out}")
expect_in("${out}" "model.layers.0.mlp.up_proj")
expect_in("${out}" "3 layers converted")
expect_in("${out}" "2.000 kernel bits/weight")
run(0 "${FIXTURE}" verify "${WORK}/k2.mbok" "${model}" "${WORK}/k2.json")

# A budget of 2.5 kernel bits per weight with importance weights.
file(WRITE "${WORK}/importance.json" "{\"model.layers.0.mlp.down_proj\": 4.0}")
run(0 "${CONVERT}" "${model}" "${WORK}/b.mbok" --bits 2.5 --max-kernels 4 --quiet
    --importance "${WORK}/importance.json" --report "${WORK}/b.json")
message(STATUS "mbok-convert --bits 2.5:\n${out}")
run(0 "${FIXTURE}" verify "${WORK}/b.mbok" "${model}" "${WORK}/b.json")
file(READ "${WORK}/b.json" report)
string(JSON bits GET "${report}" totals average_kernel_bits)
if(bits GREATER 2.5 OR bits LESS 2.0)
  message(FATAL_ERROR "--bits 2.5 gave ${bits} kernel bits per weight")
endif()
string(JSON mode GET "${report}" mode)
if(NOT mode STREQUAL "bits")
  message(FATAL_ERROR "report mode is '${mode}'")
endif()

# Only the attention projection, by pattern.
run(0 "${CONVERT}" "${model}" "${WORK}/q.mbok" -k 1 --include "q_proj" --quiet)
expect_in("${out}" "1 layers converted")

# Bad options and bad files.
expect_usage_error("--kernels" "${CONVERT}" "${model}" "${WORK}/x.mbok" --kernels 0 --quiet)
expect_usage_error("--bogus" "${CONVERT}" "${model}" "${WORK}/x.mbok" --bogus)
expect_usage_error("excludes" "${CONVERT}" "${model}" "${WORK}/x.mbok" --kernels 2 --bits 2)
expect_usage_error("--bits must be >= 1" "${CONVERT}" "${model}" "${WORK}/x.mbok" --bits 0.5 --quiet)
expect_usage_error("pattern" "${CONVERT}" "${model}" "${WORK}/x.mbok" --include "(" --quiet)
expect_usage_error("no matrix" "${CONVERT}" "${model}" "${WORK}/x.mbok" --include "nothing-matches" --quiet)
expect_usage_error("missing.safetensors" "${CONVERT}" "${WORK}/missing.safetensors" "${WORK}/x.mbok" --quiet)
file(WRITE "${WORK}/garbage.safetensors" "this is not a safetensors file")
expect_usage_error("exceeds the limit" "${CONVERT}" "${WORK}/garbage.safetensors" "${WORK}/x.mbok" --quiet)
file(WRITE "${WORK}/bad_importance.json" "{\"no.such.layer\": 2}")
expect_usage_error("no.such.layer" "${CONVERT}" "${model}" "${WORK}/x.mbok" --importance "${WORK}/bad_importance.json" --quiet)
expect_usage_error("required" "${CONVERT}")
if(EXISTS "${WORK}/x.mbok")
  message(FATAL_ERROR "a failed conversion left an output file")
endif()

# Hugging Face checkpoint directories.
set(hf "${WORK}/hf")
file(WRITE "${WORK}/tokenizer.json" "{\"version\": \"1.0\", \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}")
run(0 "${MAKE_RANDOM}" "${hf}" --preset tiny --dtype bf16 --shard-size 100KB --seed 5
    --tokenizer "${WORK}/tokenizer.json" --quiet)
expect_in("${out}" "in 4 files")
foreach(shard 1 2 3 4)
  if(NOT EXISTS "${hf}/model-0000${shard}-of-00004.safetensors")
    message(FATAL_ERROR "mbok-make-random-llama did not write shard ${shard} of 4")
  endif()
endforeach()
run(0 "${CONVERT}" "${hf}" "${WORK}/hf.mbok" --kernels 2 --quiet)
message(STATUS "mbok-convert on a sharded directory:\n${out}")
expect_in("${out}" "14 layers converted")
expect_in("${out}" "7 tensors kept")
run(0 "${FIXTURE}" verify-hf "${WORK}/hf.mbok" "${hf}" 2)
# A one-file F32 checkpoint without a tokenizer, K = 1, given its config.json.
run(0 "${MAKE_RANDOM}" "${WORK}/hf32" --config "${hf}/config.json" --dtype f32 --shard-size 0 --quiet)
expect_in("${out}" "in 1 file")
run(0 "${CONVERT}" "${WORK}/hf32" "${WORK}/hf32.mbok" -k 1 --quiet)
run(0 "${FIXTURE}" verify-hf "${WORK}/hf32.mbok" "${WORK}/hf32" 1)
# A bit budget and an --include on a directory.
run(0 "${CONVERT}" "${hf}" "${WORK}/hfb.mbok" --bits 1.5 --max-kernels 2 --quiet)
expect_in("${out}" "14 layers converted")
run(0 "${CONVERT}" "${hf}" "${WORK}/hfq.mbok" -k 1 --include "q_proj" --quiet)
expect_in("${out}" "2 layers converted")

# Malformed directories: exit 2, one line naming the culprit, no output file.
function(broken_copy name)
  file(REMOVE_RECURSE "${WORK}/${name}")
  file(COPY "${hf}/" DESTINATION "${WORK}/${name}")
endfunction()
broken_copy(no_shard)
file(REMOVE "${WORK}/no_shard/model-00002-of-00004.safetensors")
expect_usage_error("model-00002-of-00004.safetensors" "${CONVERT}" "${WORK}/no_shard" "${WORK}/x.mbok" --quiet)
broken_copy(truncated)
file(SIZE "${WORK}/truncated/model-00003-of-00004.safetensors" size)
math(EXPR keep "${size} - 100")
run(0 "${FIXTURE}" truncate "${WORK}/truncated/model-00003-of-00004.safetensors" ${keep})
expect_usage_error("model-00003-of-00004.safetensors" "${CONVERT}" "${WORK}/truncated" "${WORK}/x.mbok" --quiet)
file(READ "${hf}/config.json" config)
broken_copy(bad_shape)
string(JSON bad_config SET "${config}" intermediate_size 160)
file(WRITE "${WORK}/bad_shape/config.json" "${bad_config}")
expect_usage_error("mlp.gate_proj.weight' has shape [176, 64], expected [160, 64]" "${CONVERT}" "${WORK}/bad_shape" "${WORK}/x.mbok" --quiet)
broken_copy(no_key)
string(JSON bad_config REMOVE "${config}" num_hidden_layers)
file(WRITE "${WORK}/no_key/config.json" "${bad_config}")
expect_usage_error("missing key \"num_hidden_layers\"" "${CONVERT}" "${WORK}/no_key" "${WORK}/x.mbok" --quiet)
broken_copy(bad_type)
string(JSON bad_config SET "${config}" model_type "\"gpt_neox\"")
file(WRITE "${WORK}/bad_type/config.json" "${bad_config}")
expect_usage_error("model_type \"gpt_neox\" is not supported" "${CONVERT}" "${WORK}/bad_type" "${WORK}/x.mbok" --quiet)
if(EXISTS "${WORK}/x.mbok")
  message(FATAL_ERROR "a failed conversion left an output file")
endif()
message(STATUS "mbok-convert: all checks passed")
