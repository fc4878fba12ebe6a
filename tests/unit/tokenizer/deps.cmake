# The tokenizer area reads tokenizer.json (nlohmann/json) and runs its regular expressions with
# PCRE2 (mbok::pcre2); requires.cmake leaves the area out where they are missing.
target_link_libraries(${target} PRIVATE nlohmann_json::nlohmann_json mbok::pcre2)
