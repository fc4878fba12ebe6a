#include "corpus.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

namespace tiny {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CorpusError("corpus file '" + path + "' cannot be opened");
  std::ostringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  if (text.empty()) throw CorpusError("corpus file '" + path + "' is empty");
  return text;
}

std::string read_bible_kjv() {
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

std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

Corpus::Corpus(std::string text, double valid_fraction) : text_(std::move(text)) {
  if (text_.empty()) throw CorpusError("the corpus is empty");
  const auto n = Index(text_.size());
  split_ = n - Index(double(n) * valid_fraction);
  // At a line break, so that no character is cut in two.
  const auto nl = text_.find('\n', std::size_t(split_));
  if (nl != std::string::npos && nl + 1 < text_.size()) split_ = Index(nl + 1);
  hash_ = fnv1a(text_.data(), text_.size());
}

void Corpus::tokenize(const mbok::Tokenizer& tokenizer, Index context) {
  train_ = tokenizer.encode(train_text());
  valid_ = tokenizer.encode(valid_text());
  if (Index(train_.size()) <= context + 1 || Index(valid_.size()) <= context + 1) {
    std::ostringstream s;
    s << "corpus of " << size() << " bytes (" << train_.size() << " + " << valid_.size()
      << " tokens) is too short for a context of " << context
      << " (training and validation parts each need at least " << context + 2 << " tokens)";
    throw CorpusError(s.str());
  }
}

Batch Corpus::train_batch(Index rows, Index len, std::uint64_t seed, std::uint64_t step) const {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + step);
  std::uniform_int_distribution<Index> pick(0, Index(train_.size()) - len - 1);
  Batch b = empty(rows, len);
  for (Index r = 0; r < rows; ++r) fill(b, r, train_, pick(rng));
  return b;
}

std::vector<Batch> Corpus::valid_batches(Index count, Index len, Index rows_per_batch) const {
  const auto tokens = Index(valid_.size());
  const Index avail = (tokens - 1) / len;
  count = std::max<Index>(1, std::min(count, avail));
  const Index stride = (tokens - 1 - len) / std::max<Index>(1, count - 1);
  std::vector<Batch> out;
  for (Index first = 0; first < count; first += rows_per_batch) {
    const Index rows = std::min(rows_per_batch, count - first);
    Batch b = empty(rows, len);
    for (Index r = 0; r < rows; ++r) fill(b, r, valid_, (first + r) * stride);
    out.push_back(std::move(b));
  }
  return out;
}

Batch Corpus::empty(Index rows, Index len) {
  Batch b;
  b.rows = rows;
  b.len = len;
  b.inputs.resize(std::size_t(rows * len));
  b.targets.resize(std::size_t(rows * len));
  return b;
}

void Corpus::fill(Batch& b, Index r, const std::vector<std::int32_t>& stream, Index offset) {
  for (Index i = 0; i < b.len; ++i) {
    b.inputs[std::size_t(r * b.len + i)] = stream[std::size_t(offset + i)];
    b.targets[std::size_t(r * b.len + i)] = stream[std::size_t(offset + i + 1)];
  }
}

}  // namespace tiny
