#pragma once
/// \file
/// Byte-level BPE for small demos: a tokenizer.json built from GPT-2's 256 byte tokens, a list
/// of merges and special tokens (byte_level_tokenizer_json), and a trainer that learns merges
/// from text by pair counts (train_byte_level_merges).

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../error.hpp"
#include "byte_level.hpp"
#include "pretokenizer.hpp"
#include "regex.hpp"
#include "utf8.hpp"

namespace mbok {

/// Called after each merge learned: (merges so far, merges asked for).
using MergeProgress = std::function<void(std::size_t done, std::size_t total)>;

/// A tokenizer.json for a GPT-2-style byte-level BPE: ids 0..255 are the bytes (id b is byte
/// b, written as GPT-2's code point for it), then one id per merge result in merge order (a
/// result already in the vocabulary keeps its id), then `special_tokens` as added special
/// tokens. Pre-tokenizer ByteLevel (GPT-2 pattern, no prefix space), decoder ByteLevel.
/// Merge parts are token strings in GPT-2's code points (as train_byte_level_merges gives
/// them); a part that is neither a byte nor an earlier merge's result is an InvalidArgument.
inline std::string byte_level_tokenizer_json(
    const std::vector<std::pair<std::string, std::string>>& merges,
    const std::vector<std::string>& special_tokens) {
  using tokenizer_detail::byte_to_unicode;
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  std::int32_t next = 0;
  for (int b = 0; b < 256; ++b) vocab[byte_to_unicode(static_cast<unsigned char>(b))] = next++;
  nlohmann::ordered_json merge_list = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const auto& [a, b] = merges[i];
    for (const std::string* part : {&a, &b})
      if (!vocab.contains(*part))
        throw InvalidArgument("mbok: byte_level_tokenizer_json: merge " + std::to_string(i) +
                              " names \"" + *part +
                              "\", which is neither a byte nor an earlier merge's result");
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
    merge_list.push_back(nlohmann::ordered_json::array({a, b}));
  }
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (const std::string& s : special_tokens) {
    if (s.empty()) throw InvalidArgument("mbok: byte_level_tokenizer_json: empty special token");
    if (vocab.contains(s))
      throw InvalidArgument("mbok: byte_level_tokenizer_json: special token \"" + s +
                            "\" repeats a token");
    added.push_back({{"id", next},
                     {"content", s},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
    vocab[s] = next++;
  }
  nlohmann::ordered_json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "ByteLevel"},
                        {"add_prefix_space", false},
                        {"trim_offsets", true},
                        {"use_regex", true}};
  j["post_processor"] = {{"type", "ByteLevel"},
                         {"add_prefix_space", true},
                         {"trim_offsets", false},
                         {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"},
                  {"add_prefix_space", true},
                  {"trim_offsets", true},
                  {"use_regex", true}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", merge_list}};
  return j.dump(1);
}

/// Learns up to `num_merges` byte-level BPE merges from `text` (UTF-8): the text is cut by
/// GPT-2's pattern, and each step merges the most frequent adjacent pair (counted over the
/// pieces, weighted by how often each piece occurs). Ties go to the pair whose (left, right)
/// strings sort first, so training is deterministic. Stops early when no pair occurs twice.
/// The merges' strings are in GPT-2's code points (" the" is "Ġthe").
inline std::vector<std::pair<std::string, std::string>> train_byte_level_merges(
    std::string_view text, std::size_t num_merges, const MergeProgress& progress = {}) {
  using namespace tokenizer_detail;
  const std::size_t bad = utf8_invalid_offset(text);
  if (bad != text.size())
    throw InvalidArgument("mbok: train_byte_level_merges: text is not valid UTF-8 (at byte " +
                          std::to_string(bad) + ")");

  // Distinct pieces and their counts.
  std::unordered_map<std::string_view, std::int64_t> counts;
  static const Regex pattern(gpt2_pattern(), "train_byte_level_merges");
  for (const Span& s : pattern.find_all(text)) ++counts[text.substr(s.first, s.second - s.first)];
  std::vector<std::pair<std::string_view, std::int64_t>> distinct(counts.begin(), counts.end());
  // Hash order must not leak into the result.
  std::sort(distinct.begin(), distinct.end());

  std::vector<std::string> symbols;  // id -> GPT-2 code point string
  std::unordered_map<std::string, std::int32_t> symbol_id;
  for (int b = 0; b < 256; ++b) {
    symbols.push_back(byte_to_unicode(static_cast<unsigned char>(b)));
    symbol_id[symbols.back()] = b;
  }
  std::vector<std::vector<std::int32_t>> words;
  std::vector<std::int64_t> weight;
  for (const auto& [piece, n] : distinct) {
    std::vector<std::int32_t> w;
    for (char c : piece) w.push_back(static_cast<unsigned char>(c));
    words.push_back(std::move(w));
    weight.push_back(n);
  }

  const auto key = [](std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
           static_cast<std::uint32_t>(b);
  };
  std::unordered_map<std::uint64_t, std::int64_t> pair_count;
  std::unordered_map<std::uint64_t, std::vector<std::size_t>> where;
  const auto count_word = [&](std::size_t w, std::int64_t sign) {
    const auto& s = words[w];
    for (std::size_t i = 0; i + 1 < s.size(); ++i) {
      const auto k = key(s[i], s[i + 1]);
      auto& c = pair_count[k];
      c += sign * weight[w];
      if (c == 0) pair_count.erase(k);
      if (sign > 0) where[k].push_back(w);
    }
  };
  for (std::size_t w = 0; w < words.size(); ++w) count_word(w, +1);

  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<std::size_t> seen(words.size(), SIZE_MAX);
  while (merges.size() < num_merges) {
    std::uint64_t best = 0;
    std::int64_t best_count = 0;
    for (const auto& [k, c] : pair_count) {
      if (c < best_count) continue;
      if (c == best_count) {
        const auto a = static_cast<std::int32_t>(k >> 32),
                   b = static_cast<std::int32_t>(k & 0xFFFFFFFFu);
        const auto ba = static_cast<std::int32_t>(best >> 32),
                   bb = static_cast<std::int32_t>(best & 0xFFFFFFFFu);
        const int order = symbols[a].compare(symbols[ba]);
        if (order > 0 || (order == 0 && symbols[b] >= symbols[bb])) continue;
      }
      best = k;
      best_count = c;
    }
    if (best_count < 2) break;
    const auto a = static_cast<std::int32_t>(best >> 32),
               b = static_cast<std::int32_t>(best & 0xFFFFFFFFu);
    std::string joined = symbols[a] + symbols[b];
    std::int32_t merged;
    if (const auto it = symbol_id.find(joined); it != symbol_id.end()) {
      merged = it->second;
    } else {
      merged = static_cast<std::int32_t>(symbols.size());
      symbols.push_back(joined);
      symbol_id.emplace(std::move(joined), merged);
    }
    merges.emplace_back(symbols[a], symbols[b]);
    const std::vector<std::size_t> affected = std::move(where[best]);
    where.erase(best);
    for (std::size_t w : affected) {
      if (seen[w] == merges.size()) continue;
      seen[w] = merges.size();
      auto& s = words[w];
      bool has = false;
      for (std::size_t i = 0; i + 1 < s.size() && !has; ++i) has = s[i] == a && s[i + 1] == b;
      if (!has) continue;
      count_word(w, -1);
      std::vector<std::int32_t> out;
      out.reserve(s.size());
      for (std::size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          out.push_back(merged);
          ++i;
        } else {
          out.push_back(s[i]);
        }
      }
      s = std::move(out);
      count_word(w, +1);
    }
    if (progress) progress(merges.size(), num_merges);
  }
  return merges;
}

}  // namespace mbok
