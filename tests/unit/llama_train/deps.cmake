# The llama_train area reads and writes mbok files, HF directories (nlohmann/json) and
# checkpoints (xxHash, header-only).
find_package(nlohmann_json 3 REQUIRED)
target_link_libraries(${target} PRIVATE nlohmann_json::nlohmann_json)
if(TARGET mbok::xxhash)
  target_link_libraries(${target} PRIVATE mbok::xxhash)
endif()
