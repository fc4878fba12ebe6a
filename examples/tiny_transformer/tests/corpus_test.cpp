// Corpus loading, splitting, tokenizing and batching, and their error messages.

#include <mbok/tokenizer/trainer.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "catch.hpp"
#include "corpus.hpp"

namespace {

mbok::Tokenizer tokenizer_for(const std::string& text, std::size_t merges) {
  return mbok::Tokenizer::from_json(mbok::byte_level_tokenizer_json(
      mbok::train_byte_level_merges(text, merges), {"<s>", "</s>"}));
}

}  // namespace

TEST_CASE("corpus splits off a validation tail, tokenizes it and batches are reproducible",
          "[corpus]") {
  std::string text;
  for (int i = 0; i < 400; ++i) text += "line " + std::to_string(i) + " of the text\n";
  tiny::Corpus c(text, 0.1);
  REQUIRE(c.train_size() + c.valid_size() == c.size());
  // The split sits at a line break, about 10 % from the end.
  REQUIRE(text[std::size_t(c.train_size()) - 1] == '\n');
  REQUIRE(std::abs(double(c.valid_size()) - 0.1 * double(c.size())) < 40);
  const mbok::Tokenizer tok = tokenizer_for(c.train_text(), 40);
  REQUIRE(tok.vocab_size() == 256 + 40 + 2);
  c.tokenize(tok, 16);
  // BPE shortens the text, and decoding gives it back.
  REQUIRE(c.train_tokens().size() < std::size_t(c.train_size()));
  REQUIRE(tok.decode(c.valid_tokens()) == c.valid_text());
  const auto a = c.train_batch(4, 16, 1, 5), b = c.train_batch(4, 16, 1, 5),
             d = c.train_batch(4, 16, 1, 6);
  REQUIRE(a.inputs == b.inputs);
  REQUIRE(a.inputs != d.inputs);
  // Targets are the inputs shifted by one token.
  for (tiny::Index i = 0; i + 1 < 16; ++i)
    REQUIRE(a.targets[std::size_t(i)] == a.inputs[std::size_t(i + 1)]);
  // Validation windows come from the held-out tail only.
  const auto& valid = c.valid_tokens();
  for (const auto& batch : c.valid_batches(8, 16, 3))
    for (tiny::Index r = 0; r < batch.rows; ++r)
      REQUIRE(std::search(valid.begin(), valid.end(), batch.inputs.begin() + r * 16,
                          batch.inputs.begin() + (r + 1) * 16) != valid.end());
}

TEST_CASE("corpus errors name the problem", "[corpus]") {
  REQUIRE_THROWS_WITH(tiny::read_text_file("/nonexistent/corpus.txt"),
                      mbok::test::contains("cannot be opened"));
  const std::string empty_path = "tiny_transformer_empty_corpus.txt";
  { std::ofstream(empty_path).flush(); }
  REQUIRE_THROWS_WITH(tiny::read_text_file(empty_path), mbok::test::contains("is empty"));
  std::remove(empty_path.c_str());
  tiny::Corpus c(std::string(100, 'a'));
  REQUIRE_THROWS_WITH(c.tokenize(tokenizer_for("abc", 0), 64),
                      mbok::test::contains("too short for a context of 64"));
}
