# Settings for building mbok's own tests, benchmarks, tools and examples. Nothing here
# reaches users of the mbok::mbok target.

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()

set(MBOK_SANITIZE "" CACHE STRING "Sanitizers for the project's own targets, e.g. address,undefined")

find_package(OpenMP)

# mbok_developer_target(<target>): warnings as errors, sanitizers, OpenMP when found.
function(mbok_developer_target target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror)
  # GCC 12 reports false maybe-uninitialized warnings in code it inlines from system headers:
  # Eigen's AVX-512 packets (_mm512_undefined_ps, GCC bug 105593) and, with sanitizers,
  # std::function inside <regex>. They are not ours to fix.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
  endif()
  if(MBOK_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${MBOK_SANITIZE} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${MBOK_SANITIZE})
  endif()
  if(OpenMP_CXX_FOUND)
    target_link_libraries(${target} PRIVATE OpenMP::OpenMP_CXX)
  endif()
endfunction()
