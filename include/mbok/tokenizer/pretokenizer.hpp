#pragma once
/// \file
/// tokenizer.json "pre_tokenizer": cuts normalized text into pieces that the model encodes
/// one by one. Supported: Sequence, ByteLevel (add_prefix_space, use_regex with GPT-2's
/// pattern; maps bytes to GPT-2's printable code points), Split (String or Regex pattern,
/// behaviors Removed / Isolated / MergedWithPrevious / MergedWithNext / Contiguous, invert),
/// Digits, Metaspace (replacement, prepend_scheme, split), Whitespace and WhitespaceSplit.
/// Splitting follows the reference's rules: a pattern's matches and the text between them
/// become a list of (span, is match) covering the text, `invert` swaps the flags, the
/// behavior merges or drops, and empty pieces are dropped.

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "byte_level.hpp"
#include "json_access.hpp"
#include "regex.hpp"

namespace mbok::tokenizer_detail {

/// GPT-2's pre-tokenization pattern (ByteLevel with use_regex).
inline const char* gpt2_pattern() {
  return "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
}

/// A piece of text on its way to the model; `at_start` when it begins at the first byte of
/// the input (what Metaspace's prepend_scheme "first" tests).
struct Piece {
  std::string text;
  bool at_start = false;
};

enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

/// Cuts `text` at the `matches` of a pattern as the reference's NormalizedString::split does;
/// returns the spans of the pieces kept.
inline std::vector<Span> split_spans(std::size_t length, const std::vector<Span>& matches,
                                     bool invert, SplitBehavior behavior) {
  std::vector<std::pair<Span, bool>> all;
  std::size_t prev = 0;
  for (const Span& m : matches) {
    if (m.first > prev) all.push_back({{prev, m.first}, invert});
    all.push_back({m, !invert});
    prev = m.second;
  }
  if (prev < length) all.push_back({{prev, length}, invert});

  std::vector<Span> out;
  switch (behavior) {
    case SplitBehavior::removed:
      for (const auto& [s, is_match] : all)
        if (!is_match) out.push_back(s);
      break;
    case SplitBehavior::isolated:
      for (const auto& item : all) out.push_back(item.first);
      break;
    case SplitBehavior::merged_with_previous: {
      bool previous_match = false;
      for (const auto& [s, is_match] : all) {
        if (is_match && !previous_match && !out.empty())
          out.back().second = s.second;
        else
          out.push_back(s);
        previous_match = is_match;
      }
      break;
    }
    case SplitBehavior::merged_with_next: {
      bool previous_match = false;
      for (auto it = all.rbegin(); it != all.rend(); ++it) {
        const auto& [s, is_match] = *it;
        if (is_match && !previous_match && !out.empty())
          out.back().first = s.first;
        else
          out.push_back(s);
        previous_match = is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
    case SplitBehavior::contiguous: {
      bool previous_match = false;
      for (const auto& [s, is_match] : all) {
        if (is_match == previous_match && !out.empty())
          out.back().second = s.second;
        else
          out.push_back(s);
        previous_match = is_match;
      }
      break;
    }
  }
  std::vector<Span> kept;
  for (const Span& s : out)
    if (s.second > s.first) kept.push_back(s);
  return kept;
}

class PreTokenizer {
 public:
  PreTokenizer() = default;

  /// Parses `j` (the value at `path`; null means no pre-tokenizer: the whole piece goes on).
  PreTokenizer(const JsonSource& src, const Json& j, const std::string& path) { add(src, j, path); }

  bool empty() const { return steps_.empty(); }

  /// True when some step is ByteLevel (its pieces then hold GPT-2's byte code points).
  bool byte_level() const {
    for (const Step& s : steps_)
      if (s.kind == Kind::byte_level) return true;
    return false;
  }

  /// `pieces` pre-tokenized.
  std::vector<Piece> apply(std::vector<Piece> pieces) const {
    for (const Step& s : steps_) {
      std::vector<Piece> next;
      next.reserve(pieces.size());
      for (Piece& p : pieces) apply_step(s, std::move(p), next);
      pieces = std::move(next);
    }
    return pieces;
  }

 private:
  enum class Kind { byte_level, split, metaspace };
  struct Step {
    Kind kind = Kind::split;
    Regex pattern;  // split's (and ByteLevel's with use_regex) pattern
    bool invert = false;
    SplitBehavior behavior = SplitBehavior::isolated;
    bool add_prefix_space = false;  // ByteLevel
    bool use_regex = false;         // ByteLevel
    std::string replacement;        // Metaspace
    std::string prepend_scheme;     // Metaspace: "always", "first", "never"
    bool split = true;              // Metaspace
  };

  static void emit_split(const Step& s, Piece&& p, std::vector<Piece>& out) {
    const auto spans = split_spans(p.text.size(), s.pattern.find_all(p.text), s.invert, s.behavior);
    for (const Span& sp : spans)
      out.push_back(
          Piece{p.text.substr(sp.first, sp.second - sp.first), p.at_start && sp.first == 0});
  }

  static void apply_step(const Step& s, Piece&& p, std::vector<Piece>& out) {
    switch (s.kind) {
      case Kind::split:
        emit_split(s, std::move(p), out);
        return;
      case Kind::byte_level: {
        if (s.add_prefix_space && (p.text.empty() || p.text[0] != ' ')) p.text.insert(0, " ");
        const std::size_t first = out.size();
        if (s.use_regex)
          emit_split(s, std::move(p), out);
        else if (!p.text.empty())
          out.push_back(std::move(p));
        for (std::size_t i = first; i < out.size(); ++i)
          out[i].text = bytes_to_byte_level(out[i].text);
        return;
      }
      case Kind::metaspace: {
        std::string text;
        text.reserve(p.text.size() + 8);
        for (char c : p.text) {
          if (c == ' ')
            text += s.replacement;
          else
            text += c;
        }
        const bool starts = text.compare(0, s.replacement.size(), s.replacement) == 0;
        if (!starts &&
            (s.prepend_scheme == "always" || (s.prepend_scheme == "first" && p.at_start)))
          text.insert(0, s.replacement);
        p.text = std::move(text);
        if (s.split)
          emit_split(s, std::move(p), out);
        else if (!p.text.empty())
          out.push_back(std::move(p));
        return;
      }
    }
  }

  static SplitBehavior behavior_of(const JsonSource& src, const Json& j, const std::string& path) {
    const std::string b = src.string_at(j, "behavior", path);
    if (b == "Removed") return SplitBehavior::removed;
    if (b == "Isolated") return SplitBehavior::isolated;
    if (b == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
    if (b == "MergedWithNext") return SplitBehavior::merged_with_next;
    if (b == "Contiguous") return SplitBehavior::contiguous;
    src.fail(path + ".behavior", "unsupported split behavior \"" + b + "\"");
  }

  void add(const JsonSource& src, const Json& j, const std::string& path) {
    if (j.is_null()) return;
    const std::string type = src.type_of(j, path);
    const std::string where = src.name + ": " + path;
    Step s;
    if (type == "Sequence") {
      const Json& list = src.member(j, "pretokenizers", path);
      if (!list.is_array()) src.fail(path + ".pretokenizers", "expected an array");
      for (std::size_t i = 0; i < list.size(); ++i)
        add(src, list[i], path + ".pretokenizers[" + std::to_string(i) + "]");
      return;
    } else if (type == "ByteLevel") {
      s.kind = Kind::byte_level;
      s.add_prefix_space = src.bool_or(j, "add_prefix_space", path, true);
      s.use_regex = src.bool_or(j, "use_regex", path, true);
      if (s.use_regex) s.pattern = Regex(gpt2_pattern(), where);
    } else if (type == "Split") {
      s.pattern = pattern_regex(src, src.member(j, "pattern", path), path + ".pattern");
      s.behavior = behavior_of(src, j, path);
      s.invert = src.bool_or(j, "invert", path, false);
    } else if (type == "Digits") {
      s.pattern = Regex("\\p{N}", where);
      s.behavior = src.bool_or(j, "individual_digits", path, false) ? SplitBehavior::isolated
                                                                    : SplitBehavior::contiguous;
    } else if (type == "Whitespace") {
      // The reference: split(Invert(\w+|[^\w\s]+), Removed), i.e. keep each match.
      s.pattern = Regex("\\w+|[^\\w\\s]+", where);
      s.invert = true;
      s.behavior = SplitBehavior::removed;
    } else if (type == "WhitespaceSplit") {
      s.pattern = Regex("\\s", where);
      s.behavior = SplitBehavior::removed;
    } else if (type == "Metaspace") {
      s.kind = Kind::metaspace;
      s.replacement = single_char(src, j, "replacement", path, "\xE2\x96\x81");
      const bool add_prefix_space = src.bool_or(j, "add_prefix_space", path, true);
      s.prepend_scheme =
          src.string_or(j, "prepend_scheme", path, add_prefix_space ? "always" : "never");
      if (s.prepend_scheme != "always" && s.prepend_scheme != "first" &&
          s.prepend_scheme != "never")
        src.fail(path + ".prepend_scheme",
                 "unsupported prepend_scheme \"" + s.prepend_scheme + "\"");
      s.split = src.bool_or(j, "split", path, true);
      s.pattern = Regex::literal(s.replacement, where);
      s.behavior = SplitBehavior::merged_with_next;
    } else {
      src.fail(path, "unsupported pre-tokenizer type \"" + type + "\"");
    }
    steps_.push_back(std::move(s));
  }

  std::vector<Step> steps_;
};

}  // namespace mbok::tokenizer_detail
