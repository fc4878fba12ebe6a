# The tokenizer area reads tokenizer.json (nlohmann/json) and runs its regular expressions with
# PCRE2 (mbok::pcre2). Where PCRE2 is missing (e.g. a cross build without the target's
# libpcre2-8) the area is built from a placeholder that says so, and the tokenizer is left out.
find_package(nlohmann_json 3 QUIET)
if(TARGET mbok::pcre2 AND nlohmann_json_FOUND)
  target_link_libraries(${target} PRIVATE nlohmann_json::nlohmann_json mbok::pcre2)
else()
  message(STATUS "mbok: tokenizer tests left out (they need PCRE2 and nlohmann/json for this target)")
  set_property(TARGET ${target} PROPERTY SOURCES $<TARGET_OBJECTS:mbok_test_main>
               "${CMAKE_CURRENT_LIST_DIR}/unavailable/unavailable.cpp")
endif()
