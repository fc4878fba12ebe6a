// The byte-level BPE trainer and the tokenizer.json it is packaged in.

#include <set>

#include "tokenizer_support.hpp"

using namespace mbok;
using namespace mbok::test;

namespace {
// KJV-like text (Genesis 1:1-5, John 1:1-5), repeated so that pairs have counts to compare.
std::string kjv_like() {
  const std::string verses =
      "In the beginning God created the heaven and the earth. And the earth was without form, and "
      "void; "
      "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of "
      "the "
      "waters. And God said, Let there be light: and there was light. And God saw the light, that "
      "it was "
      "good: and God divided the light from the darkness. And God called the light Day, and the "
      "darkness "
      "he called Night. And the evening and the morning were the first day.\n"
      "In the beginning was the Word, and the Word was with God, and the Word was God. The same "
      "was in "
      "the beginning with God. All things were made by him; and without him was not any thing made "
      "that "
      "was made. In him was life; and the life was the light of men. And the light shineth in "
      "darkness; "
      "and the darkness comprehended it not.\n";
  std::string text;
  for (int i = 0; i < 8; ++i) text += verses;
  return text;
}
}  // namespace

TEST_CASE("train_byte_level_merges: deterministic, and the tokenizer round trips", "[tokenizer]") {
  const std::string text = kjv_like();
  std::size_t calls = 0;
  const auto merges = train_byte_level_merges(text, 150, [&](std::size_t done, std::size_t total) {
    ++calls;
    CHECK(done == calls);
    CHECK(total == 150);
  });
  REQUIRE(merges.size() == 150);
  CHECK(calls == 150);
  CHECK(train_byte_level_merges(text, 150) == merges);
  // The most frequent pair in this text comes first: "t" + "h" ("the", "that", "with", ...),
  // then "Ġ" + "th" and "Ġth" + "e" (" the").
  using Merge = std::pair<std::string, std::string>;
  CHECK(merges[0] == Merge("t", "h"));
  CHECK(merges[1] == Merge("Ġ", "th"));
  CHECK(merges[2] == Merge("Ġth", "e"));
  // A shorter run learns a prefix of the same merges.
  const auto first = train_byte_level_merges(text, 40);
  CHECK(std::equal(first.begin(), first.end(), merges.begin()));

  const Tokenizer tok = Tokenizer::from_json(byte_level_tokenizer_json(merges, {"<|endoftext|>"}));
  CHECK(tok.vocab_size() <= 256 + 150 + 1);
  CHECK(tok.token_to_id("<|endoftext|>") == static_cast<std::int32_t>(tok.vocab_size() - 1));
  CHECK(tok.eos_id() == tok.token_to_id("<|endoftext|>"));
  const Ids ids = tok.encode(text);
  CHECK(ids.size() * 2 < text.size());  // merges learned from the text shorten it
  CHECK(tok.decode(ids) == text);
  for (const std::string other :
       {"Straße Привет 你好 😀 — unseen text", "the light<|endoftext|>the Word"}) {
    INFO(other);
    const Ids o = tok.encode(other);
    CHECK(tok.decode(o) == other);
    CHECK(stream_decode(tok, o, false) == other);
  }
  CHECK(tok.decode(tok.encode("the light<|endoftext|>the Word"), true) == "the lightthe Word");
}

TEST_CASE("train_byte_level_merges: stops when no pair repeats; bad input", "[tokenizer]") {
  CHECK(train_byte_level_merges("abcdefg", 10).empty());
  CHECK(train_byte_level_merges("abab", 10) ==
        std::vector<std::pair<std::string, std::string>>{{"a", "b"}});
  CHECK_THROWS_AS(train_byte_level_merges(std::string("a\xC3", 2), 10), InvalidArgument);
  CHECK_THROWS_AS(byte_level_tokenizer_json({{"ab", "c"}}, {}), InvalidArgument);
  CHECK_THROWS_AS(byte_level_tokenizer_json({}, {""}), InvalidArgument);
}
