# The tokenizer area reads tokenizer.json (nlohmann/json) and runs its regular expressions with
# PCRE2 (mbok::pcre2); without them for this target (e.g. a cross build without the target's
# libpcre2-8) the area is left out.
find_package(nlohmann_json 3 QUIET)
if(NOT TARGET mbok::pcre2 OR NOT nlohmann_json_FOUND)
  set(mbok_area_missing "mbok/tokenizer/ needs PCRE2 (Debian: libpcre2-dev) and nlohmann/json")
endif()
