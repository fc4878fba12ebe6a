# Runs mbok-convert on a small generated model: fixed K, a bit budget with importance weights
# and a JSON report (checked against the converted file), and bad options and files, which
# must fail with exit code 2 and one line on stderr.
# Inputs: CONVERT, FIXTURE (executables), WORK (a scratch folder).
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
message(STATUS "mbok-convert: all checks passed")
