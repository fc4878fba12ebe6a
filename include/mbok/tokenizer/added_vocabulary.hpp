#pragma once
/// \file
/// tokenizer.json "added_tokens": tokens (special ones such as "<s>" and others) that are
/// found in the text before the model sees it and kept as single ids. As in the reference,
/// tokens with `normalized: false` are matched in the raw text and those with
/// `normalized: true` in each normalized piece (as their own normalized content); matching is
/// leftmost-longest; `single_word` rejects a match next to a word character; `lstrip` and
/// `rstrip` take the whitespace on that side into the token.

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "json_access.hpp"
#include "regex.hpp"
#include "utf8.hpp"

namespace mbok::tokenizer_detail {

struct AddedToken {
  std::string content;
  std::int32_t id = 0;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

/// A stretch of input: an added token's id, or text (id < 0) still to be tokenized.
struct Segment {
  std::string text;
  std::int32_t id = -1;
  bool at_start = false;  // begins at the input's first byte
};

/// Finds one set of added tokens (the raw or the normalized ones) in text.
class AddedMatcher {
 public:
  void add(std::string pattern, std::size_t token) {
    if (pattern.empty()) return;
    by_first_[static_cast<unsigned char>(pattern[0])].push_back({std::move(pattern), token});
    any_ = true;
  }

  /// Call once after the last add().
  void finish() {
    // Longest first: the first pattern that matches at a position is the longest there.
    for (auto& bucket : by_first_)
      std::stable_sort(bucket.begin(), bucket.end(), [](const Entry& a, const Entry& b) {
        return a.pattern.size() > b.pattern.size();
      });
  }

  bool empty() const { return !any_; }

  /// Cuts `text` into tokens and the text between them.
  void split(const std::string& text, bool at_start, const std::vector<AddedToken>& tokens,
             std::vector<Segment>& out) const {
    if (!any_) {
      if (!text.empty()) out.push_back(Segment{text, -1, at_start});
      return;
    }
    std::size_t emitted = 0;  // end of what is already in `out`
    std::size_t i = 0;
    while (i < text.size()) {
      const auto& bucket = by_first_[static_cast<unsigned char>(text[i])];
      const Entry* hit = nullptr;
      for (const Entry& e : bucket)
        if (text.compare(i, e.pattern.size(), e.pattern) == 0) {
          hit = &e;
          break;
        }
      if (hit == nullptr) {
        ++i;
        continue;
      }
      const AddedToken& tok = tokens[hit->token];
      std::size_t start = i, stop = i + hit->pattern.size();
      i = stop;  // the search goes on after this match even when it is rejected
      if (tok.single_word &&
          ((start > 0 && word_before(text, start)) || (stop < text.size() && word_at(text, stop))))
        continue;
      if (tok.lstrip) {
        while (start > emitted) {
          std::size_t s = start - 1;
          while (s > emitted && (static_cast<unsigned char>(text[s]) & 0xC0) == 0x80) --s;
          std::size_t k = s;
          if (!is_unicode_whitespace(utf8_next(text, k))) break;
          start = s;
        }
      }
      if (tok.rstrip) {
        while (stop < text.size()) {
          std::size_t k = stop;
          if (!is_unicode_whitespace(utf8_next(text, k))) break;
          stop = k;
        }
        i = std::max(i, stop);
      }
      if (start > emitted)
        out.push_back(Segment{text.substr(emitted, start - emitted), -1, at_start && emitted == 0});
      out.push_back(Segment{tok.content, tok.id, false});
      emitted = stop;
    }
    if (emitted < text.size())
      out.push_back(Segment{text.substr(emitted), -1, at_start && emitted == 0});
  }

 private:
  struct Entry {
    std::string pattern;
    std::size_t token;
  };

  static const Regex& word_char() {
    static const Regex re("\\A\\w", "added token single_word");
    return re;
  }
  static bool word_at(const std::string& text, std::size_t at) {
    std::size_t end = at;
    utf8_next(text, end);
    return word_char().search(std::string_view(text).substr(at, end - at));
  }
  static bool word_before(const std::string& text, std::size_t at) {
    std::size_t s = at - 1;
    while (s > 0 && (static_cast<unsigned char>(text[s]) & 0xC0) == 0x80) --s;
    return word_at(text, s);
  }

  std::array<std::vector<Entry>, 256> by_first_;
  bool any_ = false;
};

/// Parses the "added_tokens" array (null or missing: none).
inline std::vector<AddedToken> parse_added_tokens(const JsonSource& src, const Json* list) {
  std::vector<AddedToken> out;
  if (list == nullptr) return out;
  if (!list->is_array()) src.fail("added_tokens", "expected an array");
  for (std::size_t i = 0; i < list->size(); ++i) {
    const Json& t = (*list)[i];
    const std::string path = "added_tokens[" + std::to_string(i) + "]";
    AddedToken a;
    a.id = src.id(src.member(t, "id", path), path + ".id");
    a.content = src.string_at(t, "content", path);
    if (a.content.empty()) src.fail(path + ".content", "empty added token");
    a.special = src.bool_or(t, "special", path, false);
    a.lstrip = src.bool_or(t, "lstrip", path, false);
    a.rstrip = src.bool_or(t, "rstrip", path, false);
    a.single_word = src.bool_or(t, "single_word", path, false);
    a.normalized = src.bool_or(t, "normalized", path, !a.special);
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace mbok::tokenizer_detail
