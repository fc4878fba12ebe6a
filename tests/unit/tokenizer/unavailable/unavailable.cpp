// Built instead of the tokenizer tests where PCRE2 or nlohmann/json is missing for the target
// (see ../deps.cmake): the area then tests nothing, and says so.
#include "catch.hpp"

TEST_CASE("tokenizer tests left out: no PCRE2 or nlohmann/json for this target", "[tokenizer]") {
  WARN("mbok/tokenizer/ needs PCRE2 (libpcre2-8) and nlohmann/json; the tokenizer tests were not built");
  SUCCEED();
}
