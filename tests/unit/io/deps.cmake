# The io area reads and writes JSON headers (nlohmann/json) and runs the convert tool.
find_package(nlohmann_json 3 REQUIRED)
target_link_libraries(${target} PRIVATE nlohmann_json::nlohmann_json)
# Checkpoints hash with xxHash (header-only).
if(NOT TARGET mbok::xxhash)
  message(FATAL_ERROR "the io tests need xxhash.h (Debian: libxxhash-dev)")
endif()
target_link_libraries(${target} PRIVATE mbok::xxhash)
