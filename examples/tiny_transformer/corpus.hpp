#pragma once
// The training text: a file given by --corpus, or by default the King James Bible as
// Debian's bible-kjv prints it. Split into a training part and a held-out validation tail;
// batches are windows at random offsets drawn from a generator seeded by (seed, step), so a
// run resumed at step s sees the same batches as an uninterrupted one.

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
  /// Splits `text` so the last `valid_fraction` is held out. Throws `CorpusError` when
  /// either part is shorter than one window of `context` + 1 bytes.
  Corpus(std::string text, Index context, double valid_fraction = 0.05);

  Index size() const { return Index(text_.size()); }
  Index train_size() const { return split_; }
  Index valid_size() const { return size() - split_; }
  std::uint64_t hash() const { return hash_; }
  const std::string& text() const { return text_; }

  /// `rows` random training windows of `len` tokens for step `step`.
  Batch train_batch(Index rows, Index len, std::uint64_t seed, std::uint64_t step) const;

  /// Validation windows: `count` windows of `len` tokens evenly spread over the held-out
  /// part (fewer when it is short), grouped into batches of at most `rows_per_batch`.
  std::vector<Batch> valid_batches(Index count, Index len, Index rows_per_batch) const;

 private:
  static Batch empty(Index rows, Index len);
  void fill(Batch& b, Index r, Index offset) const;

  std::string text_;
  Index split_ = 0;
  std::uint64_t hash_ = 0;
};

}  // namespace tiny
