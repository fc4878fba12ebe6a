# The io area reads and writes JSON headers (nlohmann/json) and runs the convert tool.
find_package(nlohmann_json 3 REQUIRED)
target_link_libraries(${target} PRIVATE nlohmann_json::nlohmann_json)
