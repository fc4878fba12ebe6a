#pragma once
// The training text: a file given by --corpus, or by default the King James Bible as
// Debian's bible-kjv prints it. Split into a training part and a held-out validation tail;
// batches are windows at random offsets drawn from a generator seeded by (seed, step), so a
// run resumed at step s sees the same batches as an uninterrupted one.

#include <mbok/error.hpp>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
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
inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CorpusError("corpus file '" + path + "' cannot be opened");
  std::ostringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  if (text.empty()) throw CorpusError("corpus file '" + path + "' is empty");
  return text;
}

/// The King James Bible from the `bible` program (Debian package bible-kjv).
inline std::string read_bible_kjv() {
  const char* command = "bible -l10000 'gen1:1-rev22:21' 2>/dev/null";
  FILE* pipe = popen(command, "r");
  std::string text;
  if (pipe) {
    char buf[1 << 16];
    std::size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, pipe)) > 0) text.append(buf, got);
    pclose(pipe);
  }
  if (text.size() < 100000)
    throw CorpusError(
        "no default corpus: the King James Bible needs the 'bible' program (apt-get install "
        "bible-kjv); or pass a text file with --corpus FILE");
  return text;
}

/// FNV-1a 64-bit hash (identifies corpora and configurations in cache file names).
inline std::uint64_t fnv1a(const void* data, std::size_t n,
                           std::uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

class Corpus {
 public:
  /// Splits `text` so the last `valid_fraction` is held out. Throws `CorpusError` when
  /// either part is shorter than one window of `context` + 1 bytes.
  Corpus(std::string text, Index context, double valid_fraction = 0.05) : text_(std::move(text)) {
    const auto n = Index(text_.size());
    split_ = n - Index(double(n) * valid_fraction);
    if (split_ <= context + 1 || n - split_ <= context + 1) {
      std::ostringstream s;
      s << "corpus of " << n << " bytes is too short for a context of " << context
        << " (training and validation parts each need at least " << context + 2 << " bytes)";
      throw CorpusError(s.str());
    }
    hash_ = fnv1a(text_.data(), text_.size());
  }

  Index size() const { return Index(text_.size()); }
  Index train_size() const { return split_; }
  Index valid_size() const { return size() - split_; }
  std::uint64_t hash() const { return hash_; }
  const std::string& text() const { return text_; }

  /// `rows` random training windows of `len` tokens for step `step`.
  Batch train_batch(Index rows, Index len, std::uint64_t seed, std::uint64_t step) const {
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + step);
    std::uniform_int_distribution<Index> pick(0, split_ - len - 1);
    Batch b = empty(rows, len);
    for (Index r = 0; r < rows; ++r) fill(b, r, pick(rng));
    return b;
  }

  /// Validation windows: `count` windows of `len` tokens evenly spread over the held-out
  /// part (fewer when it is short), grouped into batches of at most `rows_per_batch`.
  std::vector<Batch> valid_batches(Index count, Index len, Index rows_per_batch) const {
    const Index avail = (valid_size() - 1) / len;
    count = std::max<Index>(1, std::min(count, avail));
    const Index stride = (valid_size() - 1 - len) / std::max<Index>(1, count - 1);
    std::vector<Batch> out;
    for (Index first = 0; first < count; first += rows_per_batch) {
      const Index rows = std::min(rows_per_batch, count - first);
      Batch b = empty(rows, len);
      for (Index r = 0; r < rows; ++r) fill(b, r, split_ + (first + r) * stride);
      out.push_back(std::move(b));
    }
    return out;
  }

 private:
  static Batch empty(Index rows, Index len) {
    Batch b;
    b.rows = rows;
    b.len = len;
    b.inputs.resize(std::size_t(rows * len));
    b.targets.resize(std::size_t(rows * len));
    return b;
  }
  void fill(Batch& b, Index r, Index offset) const {
    for (Index i = 0; i < b.len; ++i) {
      b.inputs[std::size_t(r * b.len + i)] = std::uint8_t(text_[std::size_t(offset + i)]);
      b.targets[std::size_t(r * b.len + i)] = std::uint8_t(text_[std::size_t(offset + i + 1)]);
    }
  }

  std::string text_;
  Index split_ = 0;
  std::uint64_t hash_ = 0;
};

}  // namespace tiny
