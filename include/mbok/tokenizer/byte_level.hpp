#pragma once
/// \file
/// GPT-2's byte <-> unicode map (`bytes_to_unicode`): every byte is shown as one printable
/// code point so that byte-level BPE vocabularies are plain strings. Printable Latin-1 bytes
/// ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves; the other 68 bytes map, in byte order,
/// to U+0100, U+0101, ... (so ' ' is 'Ġ' U+0120 and '\n' is 'Ċ' U+010A).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "utf8.hpp"

namespace mbok::tokenizer_detail {

/// The code point byte `b` is shown as.
inline std::uint32_t byte_to_codepoint(unsigned char b) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    std::uint32_t extra = 0;
    for (std::uint32_t c = 0; c < 256; ++c) {
      const bool printable =
          (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
      t[c] = printable ? c : 256 + extra++;
    }
    return t;
  }();
  return table[b];
}

/// UTF-8 of the code point byte `b` is shown as (precomputed: this is the hot path).
inline const std::string& byte_to_unicode(unsigned char b) {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    for (int c = 0; c < 256; ++c)
      t[c] = utf8_encode(byte_to_codepoint(static_cast<unsigned char>(c)));
    return t;
  }();
  return table[b];
}

/// The byte shown as code point `cp`, or -1 when no byte is shown as `cp`.
inline int codepoint_to_byte(std::uint32_t cp) {
  static const std::array<std::int16_t, 324> table = [] {
    std::array<std::int16_t, 324> t{};
    t.fill(-1);
    for (int c = 0; c < 256; ++c)
      t[byte_to_codepoint(static_cast<unsigned char>(c))] = static_cast<std::int16_t>(c);
    return t;
  }();
  return cp < table.size() ? table[cp] : -1;
}

/// `bytes` with every byte replaced by the code point it is shown as.
inline std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += byte_to_unicode(static_cast<unsigned char>(c));
  return out;
}

/// The inverse of bytes_to_byte_level for one token: false (and `out` untouched) when the
/// token holds a code point that stands for no byte, as the reference then keeps the token's
/// own UTF-8.
inline bool byte_level_to_bytes(std::string_view token, std::string& out) {
  std::string bytes;
  bytes.reserve(token.size());
  std::size_t i = 0;
  while (i < token.size()) {
    const int b = codepoint_to_byte(utf8_next(token, i));
    if (b < 0) return false;
    bytes += static_cast<char>(b);
  }
  out += bytes;
  return true;
}

}  // namespace mbok::tokenizer_detail
