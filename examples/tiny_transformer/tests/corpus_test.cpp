// Corpus loading, splitting and batching, and their error messages.

#include <cstdio>
#include <fstream>
#include <string>

#include "catch.hpp"
#include "corpus.hpp"

TEST_CASE("corpus splits off a validation tail and batches are reproducible", "[corpus]") {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "line " + std::to_string(i) + " of the text\n";
  tiny::Corpus c(text, 16, 0.1);
  REQUIRE(c.train_size() + c.valid_size() == c.size());
  REQUIRE(c.valid_size() == tiny::Index(double(c.size()) * 0.1));
  const auto a = c.train_batch(4, 16, 1, 5), b = c.train_batch(4, 16, 1, 5),
             d = c.train_batch(4, 16, 1, 6);
  REQUIRE(a.inputs == b.inputs);
  REQUIRE(a.inputs != d.inputs);
  // Targets are the inputs shifted by one byte.
  for (tiny::Index i = 0; i + 1 < 16; ++i)
    REQUIRE(a.targets[std::size_t(i)] == a.inputs[std::size_t(i + 1)]);
  // Validation windows come from the held-out tail only.
  const std::string tail = text.substr(std::size_t(c.train_size()));
  for (const auto& batch : c.valid_batches(8, 16, 3)) {
    for (tiny::Index r = 0; r < batch.rows; ++r) {
      const std::string window(batch.inputs.begin() + r * 16, batch.inputs.begin() + (r + 1) * 16);
      REQUIRE(tail.find(window) != std::string::npos);
    }
  }
}

TEST_CASE("corpus errors name the problem", "[corpus]") {
  REQUIRE_THROWS_WITH(tiny::read_text_file("/nonexistent/corpus.txt"),
                      mbok::test::contains("cannot be opened"));
  const std::string empty_path = "tiny_transformer_empty_corpus.txt";
  { std::ofstream(empty_path).flush(); }
  REQUIRE_THROWS_WITH(tiny::read_text_file(empty_path), mbok::test::contains("is empty"));
  std::remove(empty_path.c_str());
  REQUIRE_THROWS_WITH(tiny::Corpus(std::string(100, 'a'), 64),
                      mbok::test::contains("too short for a context of 64"));
}
