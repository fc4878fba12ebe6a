#pragma once
/// \file
/// UTF-8 helpers for the tokenizer: validation, code point decoding and encoding, and the
/// Unicode White_Space test that Hugging Face `tokenizers` uses (Rust's char::is_whitespace)
/// for added tokens' lstrip/rstrip.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mbok::tokenizer_detail {

/// Length in bytes of the UTF-8 sequence that starts with `lead` (1 for a stray byte, so a
/// walk over invalid text still advances).
inline std::size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

/// Byte offset of the first invalid UTF-8 sequence in `s`, or `s.size()` when it is valid
/// (overlong forms, surrogates and code points above U+10FFFF are invalid, as in Rust's str).
inline std::size_t utf8_invalid_offset(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3Fu);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return i;
    i += len;
  }
  return n;
}

/// Decodes the code point at `s[i]` (valid UTF-8 assumed) and advances `i` past it.
inline std::uint32_t utf8_next(std::string_view s, std::size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const std::size_t len = utf8_length(c);
  if (len == 1 || i + len > s.size()) {
    ++i;
    return c;
  }
  std::uint32_t cp = len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
  for (std::size_t k = 1; k < len; ++k)
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3Fu);
  i += len;
  return cp;
}

/// Appends the UTF-8 encoding of `cp` to `out`.
inline void utf8_append(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

inline std::string utf8_encode(std::uint32_t cp) {
  std::string out;
  utf8_append(out, cp);
  return out;
}

/// Unicode White_Space (what Rust's char::is_whitespace tests).
inline bool is_unicode_whitespace(std::uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

/// The text with invalid UTF-8 sequences replaced by U+FFFD, one per maximal invalid
/// subpart, as Rust's String::from_utf8_lossy does.
inline std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t bad = utf8_invalid_offset(s.substr(i));
    out.append(s.data() + i, bad);
    i += bad;
    if (i >= s.size()) break;
    // Maximal subpart: the lead byte plus the continuation bytes that still could have
    // completed a valid sequence (the WHATWG / Rust rule).
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 1;
    unsigned char lo = 0x80, hi = 0xBF;
    std::size_t need = 0;
    if (c >= 0xC2 && c <= 0xDF)
      need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    for (std::size_t k = 0; k < need && i + len < s.size(); ++k) {
      const auto d = static_cast<unsigned char>(s[i + len]);
      if (d < lo || d > hi) break;
      lo = 0x80;
      hi = 0xBF;
      ++len;
    }
    out += "\xEF\xBF\xBD";
    i += len;
  }
  return out;
}

}  // namespace mbok::tokenizer_detail
