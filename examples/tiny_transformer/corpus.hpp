#pragma once
// The training text: a file given by --corpus, or by default the King James Bible as
// Debian's bible-kjv prints it. Split into a training part and a held-out validation tail
// (at a line break), both tokenized with the run's byte-level BPE tokenizer; batches are
// token windows at random offsets drawn from a generator seeded by (seed, step), so a run
// resumed at step s sees the same batches as an uninterrupted one.

#include <mbok/tokenizer/tokenizer.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.hpp"

namespace tiny {

/// A corpus file could not be used (missing, empty, too short).
class CorpusError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Reads a whole file; throws `CorpusError` when it is missing or empty.
std::string read_text_file(const std::string& path);

/// The King James Bible from the `bible` program (Debian package bible-kjv); throws
/// `CorpusError` when the program is missing.
std::string read_bible_kjv();

/// FNV-1a 64-bit hash (identifies corpora and configurations in cache file names).
std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h = 1469598103934665603ull);

class Corpus {
 public:
  /// Splits `text` so that about the last `valid_fraction` (from the first line break there)
  /// is held out. Throws `CorpusError` for an empty text.
  explicit Corpus(std::string text, double valid_fraction = 0.05);

  /// Tokenizes both parts. Throws `CorpusError` when either part has fewer tokens than one
  /// window of `context` + 1.
  void tokenize(const mbok::Tokenizer& tokenizer, Index context);

  Index size() const { return Index(text_.size()); }
  Index train_size() const { return split_; }
  Index valid_size() const { return size() - split_; }
  std::uint64_t hash() const { return hash_; }
  /// The training part's text (what the tokenizer learns from).
  std::string train_text() const { return text_.substr(0, std::size_t(split_)); }
  /// The held-out part's text (what perplexity is measured on).
  std::string valid_text() const { return text_.substr(std::size_t(split_)); }
  const std::vector<std::int32_t>& train_tokens() const { return train_; }
  const std::vector<std::int32_t>& valid_tokens() const { return valid_; }

  /// `rows` random training windows of `len` tokens for step `step`.
  Batch train_batch(Index rows, Index len, std::uint64_t seed, std::uint64_t step) const;

  /// Validation windows: `count` windows of `len` tokens evenly spread over the held-out
  /// part (fewer when it is short), grouped into batches of at most `rows_per_batch`.
  std::vector<Batch> valid_batches(Index count, Index len, Index rows_per_batch) const;

 private:
  static Batch empty(Index rows, Index len);
  static void fill(Batch& b, Index r, const std::vector<std::int32_t>& stream, Index offset);

  std::string text_;
  Index split_ = 0;
  std::uint64_t hash_ = 0;
  std::vector<std::int32_t> train_, valid_;
};

}  // namespace tiny
