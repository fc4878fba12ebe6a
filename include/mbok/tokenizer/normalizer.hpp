#pragma once
/// \file
/// tokenizer.json "normalizer": the text rewrites applied to each piece of input between
/// added tokens, before pre-tokenization. Supported: Sequence, Prepend, Replace (String or
/// Regex pattern), Strip, and NFC (see nfc.hpp); anything else is a FormatError naming it.

#include <string>
#include <string_view>
#include <vector>

#include "json_access.hpp"
#include "nfc.hpp"
#include "regex.hpp"
#include "utf8.hpp"

namespace mbok::tokenizer_detail {

class Normalizer {
 public:
  Normalizer() = default;

  /// Parses `j` (the value at `path`; null means no normalizer).
  Normalizer(const JsonSource& src, const Json& j, const std::string& path) { add(src, j, path); }

  bool empty() const { return steps_.empty(); }

  /// `text` normalized.
  std::string apply(std::string text) const {
    for (const Step& s : steps_) {
      switch (s.kind) {
        case Kind::prepend:
          if (!text.empty()) text.insert(0, s.text);
          break;
        case Kind::replace:
          text = replace_all(s.pattern, text, s.text);
          break;
        case Kind::strip:
          text = strip(text, s.left, s.right);
          break;
        case Kind::nfc:
          require_nfc(text);
          break;
      }
    }
    return text;
  }

  /// Every match of `pattern` in `text` replaced by `content`.
  static std::string replace_all(const Regex& pattern, const std::string& text,
                                 const std::string& content) {
    const auto spans = pattern.find_all(text);
    if (spans.empty()) return text;
    std::string out;
    out.reserve(text.size() + spans.size() * content.size());
    std::size_t at = 0;
    for (const auto& [b, e] : spans) {
      out.append(text, at, b - at);
      out += content;
      at = e;
    }
    out.append(text, at, std::string::npos);
    return out;
  }

 private:
  enum class Kind { prepend, replace, strip, nfc };
  struct Step {
    Kind kind;
    std::string text;  // Prepend's prefix, Replace's content
    Regex pattern;     // Replace
    bool left = false, right = false;
  };

  static std::string strip(const std::string& text, bool left, bool right) {
    std::size_t b = 0, e = text.size();
    if (left) {
      while (b < e) {
        std::size_t i = b;
        if (!is_unicode_whitespace(utf8_next(text, i))) break;
        b = i;
      }
    }
    if (right) {
      while (e > b) {
        std::size_t s = e - 1;
        while (s > b && (static_cast<unsigned char>(text[s]) & 0xC0) == 0x80) --s;
        std::size_t i = s;
        if (!is_unicode_whitespace(utf8_next(text, i))) break;
        e = s;
      }
    }
    return text.substr(b, e - b);
  }

  void add(const JsonSource& src, const Json& j, const std::string& path) {
    if (j.is_null()) return;
    const std::string type = src.type_of(j, path);
    if (type == "Sequence") {
      const Json& list = src.member(j, "normalizers", path);
      if (!list.is_array()) src.fail(path + ".normalizers", "expected an array");
      for (std::size_t i = 0; i < list.size(); ++i)
        add(src, list[i], path + ".normalizers[" + std::to_string(i) + "]");
    } else if (type == "Prepend") {
      steps_.push_back(Step{Kind::prepend, src.string_at(j, "prepend", path), {}, false, false});
    } else if (type == "Replace") {
      Regex pattern = pattern_regex(src, src.member(j, "pattern", path), path + ".pattern");
      steps_.push_back(
          Step{Kind::replace, src.string_at(j, "content", path), std::move(pattern), false, false});
    } else if (type == "Strip") {
      steps_.push_back(Step{Kind::strip,
                            {},
                            {},
                            src.bool_or(j, "strip_left", path, true),
                            src.bool_or(j, "strip_right", path, true)});
    } else if (type == "NFC") {
      steps_.push_back(Step{Kind::nfc, {}, {}, false, false});
    } else {
      src.fail(path, "unsupported normalizer type \"" + type + "\"");
    }
  }

  std::vector<Step> steps_;
};

}  // namespace mbok::tokenizer_detail
