#pragma once
// Shared helpers of the tokenizer tests.

#include <mbok/tokenizer/tokenizer.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "catch.hpp"
#include "fixtures.hpp"

namespace mbok::test {

inline Tokenizer load(const Json& j, const std::string& name = "fixture.json") {
  return Tokenizer::from_json(j.dump(1), name);
}

using Ids = std::vector<std::int32_t>;

/// True when `s` is valid UTF-8.
inline bool valid_utf8(const std::string& s) {
  return tokenizer_detail::utf8_invalid_offset(s) == s.size();
}

/// Streams `ids` through a DecodeStream; checks every piece is whole UTF-8 and returns the
/// concatenation (flush included).
inline std::string stream_decode(const Tokenizer& tok, const Ids& ids, bool skip_special) {
  DecodeStream stream(tok, skip_special);
  std::string all;
  for (std::int32_t id : ids) {
    const std::string piece = stream.push(id);
    INFO("piece after id " << id << ": \"" << piece << "\"");
    CHECK(valid_utf8(piece));
    all += piece;
  }
  all += stream.flush();
  return all;
}

}  // namespace mbok::test
