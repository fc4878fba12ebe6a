#pragma once
/// \file
/// The regular expressions of tokenizer.json (Split patterns, ByteLevel's GPT-2 pattern,
/// Replace patterns) compiled with PCRE2 in UTF + UCP mode, so \p{L}, \p{N}, \s and (?i:...)
/// mean what they mean to the Oniguruma engine Hugging Face `tokenizers` uses. JIT-compiled
/// where PCRE2 has a JIT. A compiled Regex is immutable and may be shared between threads.

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "utf8.hpp"

namespace mbok::tokenizer_detail {

static_assert(PCRE2_CODE_UNIT_WIDTH == 8, "mbok's tokenizer uses the 8-bit PCRE2 library");

/// [begin, end) byte offsets of one match.
using Span = std::pair<std::size_t, std::size_t>;

class Regex {
 public:
  Regex() = default;

  /// Compiles `pattern`; a pattern PCRE2 rejects throws FormatError naming `where`.
  Regex(const std::string& pattern, const std::string& where) {
    int code = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* compiled =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                      PCRE2_UTF | PCRE2_UCP, &code, &offset, nullptr);
    if (compiled == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(code, message, sizeof message);
      throw FormatError("mbok: " + where + ": regular expression /" + pattern +
                        "/ does not compile (at offset " + std::to_string(offset) + ": " +
                        reinterpret_cast<const char*>(message) + ")");
    }
    // No JIT on this platform or build is fine: pcre2_match then interprets.
    (void)pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE);
    code_ = std::shared_ptr<pcre2_code>(compiled, pcre2_code_free);
    pattern_ = pattern;
  }

  /// A pattern that matches `literal` exactly.
  static Regex literal(std::string_view literal, const std::string& where) {
    std::string escaped;
    for (char c : literal) {
      const auto u = static_cast<unsigned char>(c);
      const bool plain =
          u >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      if (!plain) escaped += '\\';
      escaped += c;
    }
    return Regex(escaped, where);
  }

  bool empty() const { return code_ == nullptr; }
  const std::string& pattern() const { return pattern_; }

  /// The non-overlapping, non-empty matches in `subject`, left to right (valid UTF-8
  /// assumed: the caller checked it once).
  std::vector<Span> find_all(std::string_view subject) const {
    std::vector<Span> out;
    std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> md(
        pcre2_match_data_create_from_pattern(code_.get(), nullptr), pcre2_match_data_free);
    if (!md) throw std::bad_alloc();
    const auto* data = reinterpret_cast<PCRE2_SPTR>(subject.data());
    std::size_t at = 0;
    while (at <= subject.size()) {
      const int rc =
          pcre2_match(code_.get(), data, subject.size(), at, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof message);
        throw FormatError("mbok: tokenizer regular expression /" + pattern_ +
                          "/ failed: " + reinterpret_cast<const char*>(message));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      const std::size_t b = ov[0], e = ov[1];
      if (e > b) {
        out.emplace_back(b, e);
        at = e;
      } else {
        // An empty match yields no piece (as in the reference); step over one character.
        if (b >= subject.size()) break;
        at = b + utf8_length(static_cast<unsigned char>(subject[b]));
      }
    }
    return out;
  }

  /// True when the pattern matches somewhere in `subject`.
  bool search(std::string_view subject) const {
    std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> md(
        pcre2_match_data_create_from_pattern(code_.get(), nullptr), pcre2_match_data_free);
    if (!md) throw std::bad_alloc();
    const int rc = pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(subject.data()),
                               subject.size(), 0, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
    return rc >= 0;
  }

 private:
  std::shared_ptr<pcre2_code> code_;
  std::string pattern_;
};

/// A Split/Replace "pattern": {"String": "..."} (matched literally) or {"Regex": "..."}.
template <typename Source, typename JsonT>
Regex pattern_regex(const Source& src, const JsonT& pattern, const std::string& path) {
  if (pattern.is_object() && pattern.size() == 1) {
    if (pattern.contains("String") && pattern["String"].is_string())
      return Regex::literal(pattern["String"].template get<std::string>(), src.name + ": " + path);
    if (pattern.contains("Regex") && pattern["Regex"].is_string())
      return Regex(pattern["Regex"].template get<std::string>(), src.name + ": " + path);
  }
  src.fail(path, "expected {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace mbok::tokenizer_detail
