# Configures, builds and runs tests/package/consumer in one way of consuming mbok.
# -DMODE=install|build_tree|subdirectory|fetchcontent|pkg_config|examples -DSOURCE_DIR=... -DBUILD_DIR=...
# -DWORK_DIR=... [-DREADME=path/to/README.md] [-DCXX=compiler]
cmake_minimum_required(VERSION 3.16)

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  message("${out}")
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(consumer "${SOURCE_DIR}/tests/package/consumer")
set(args -DCMAKE_BUILD_TYPE=Release)
if(CXX)
  list(APPEND args -DCMAKE_CXX_COMPILER=${CXX})
endif()

# The README's API example, extracted between its markers, is built by every consumer.
if(README)
  file(READ "${README}" text)
  string(REGEX MATCH "<!-- api-example -->[^`]*```cpp\n(.*)\n```[ \t\n]*<!-- /api-example -->" found "${text}")
  if(NOT found)
    message(FATAL_ERROR "README has no api-example block")
  endif()
  file(WRITE "${WORK_DIR}/readme_example.cpp" "${CMAKE_MATCH_1}\n")
  list(APPEND args -DMBOK_README_EXAMPLE=${WORK_DIR}/readme_example.cpp)
endif()

if(MODE STREQUAL "install" OR MODE STREQUAL "pkg_config" OR MODE STREQUAL "examples")
  run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
endif()

if(MODE STREQUAL "pkg_config")
  # A build with no CMake at all: the compiler flags come from mbok.pc.
  set(ENV{PKG_CONFIG_PATH} "${WORK_DIR}/prefix/share/pkgconfig")
  find_program(PKG_CONFIG pkg-config REQUIRED)
  execute_process(COMMAND ${PKG_CONFIG} --cflags mbok OUTPUT_VARIABLE cflags RESULT_VARIABLE rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config --cflags mbok failed")
  endif()
  separate_arguments(cflags UNIX_COMMAND "${cflags}")
  if(NOT CXX)
    set(CXX c++)
  endif()
  run(${CXX} ${cflags} -Wall -Wextra -Werror "${consumer}/main.cpp" -o "${WORK_DIR}/app")
  run("${WORK_DIR}/app")
  return()
endif()

if(MODE STREQUAL "examples")
  # examples/ is itself a project that finds the installed package.
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/examples" -B "${WORK_DIR}/build" ${args}
      -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/build" --target layer_conversion)
  run("${WORK_DIR}/build/layer_conversion/layer_conversion" 64 96)
  return()
endif()

if(MODE STREQUAL "install")
  list(APPEND args -DMBOK_CONSUME_MODE=find_package -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
elseif(MODE STREQUAL "build_tree")
  list(APPEND args -DMBOK_CONSUME_MODE=find_package -Dmbok_DIR=${BUILD_DIR})
elseif(MODE STREQUAL "subdirectory" OR MODE STREQUAL "fetchcontent")
  list(APPEND args -DMBOK_CONSUME_MODE=${MODE} -DMBOK_SOURCE_DIR=${SOURCE_DIR})
else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()

run(${CMAKE_COMMAND} -S "${consumer}" -B "${WORK_DIR}/build" ${args})
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("${WORK_DIR}/build/app")
if(README)
  run("${WORK_DIR}/build/readme_example")
endif()
