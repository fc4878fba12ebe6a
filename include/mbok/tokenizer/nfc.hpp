#pragma once
/// \file
/// The NFC normalizer (Qwen2's tokenizer.json has one) without Unicode composition tables:
/// text that is already in NFC passes unchanged, which is what NFC does to it; text that may
/// not be in NFC is an error rather than being tokenized differently from the reference.
///
/// "May not be in NFC" is decided conservatively: any combining mark (\p{M}), any conjoining
/// Hangul vowel or trailing consonant (U+1161..U+1175, U+11A8..U+11C2) and any character
/// whose NFC is another character (the Unicode NFC_Quick_Check=No singletons) make the text
/// suspect. Plain Latin, Cyrillic, Greek, CJK, precomposed accented letters and Hangul
/// syllables pass.

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "../error.hpp"
#include "regex.hpp"
#include "utf8.hpp"

namespace mbok::tokenizer_detail {

inline bool nfc_singleton(std::uint32_t c) {
  // NFC_Quick_Check=No (excluding combining marks, caught by \p{M}).
  return c == 0x0374 || c == 0x037E || c == 0x0387 || (c >= 0x0958 && c <= 0x095F) || c == 0x09DC ||
         c == 0x09DD || c == 0x09DF || c == 0x0A33 || c == 0x0A36 || (c >= 0x0A59 && c <= 0x0A5B) ||
         c == 0x0A5E || c == 0x0B5C || c == 0x0B5D || c == 0x0F43 || c == 0x0F4D || c == 0x0F52 ||
         c == 0x0F57 || c == 0x0F5C || c == 0x0F69 || c == 0x0F73 || c == 0x0F75 || c == 0x0F76 ||
         c == 0x0F78 || c == 0x0F81 || c == 0x0F93 || c == 0x0F9D || c == 0x0FA2 || c == 0x0FA7 ||
         c == 0x0FAC || c == 0x0FB9 || (c >= 0x1F71 && c <= 0x1F7D && (c & 1) == 1) ||
         c == 0x1FBB || c == 0x1FBE || c == 0x1FC9 || c == 0x1FCB || c == 0x1FD3 || c == 0x1FDB ||
         c == 0x1FE3 || c == 0x1FEB || c == 0x1FEE || c == 0x1FEF || c == 0x1FF9 || c == 0x1FFB ||
         c == 0x1FFD || c == 0x2000 || c == 0x2001 || c == 0x2126 || c == 0x212A || c == 0x212B ||
         c == 0x2329 || c == 0x232A || c == 0x2ADC || (c >= 0xF900 && c <= 0xFAFF) ||
         (c >= 0xFB1D && c <= 0xFB4E) || (c >= 0x1D15E && c <= 0x1D164) ||
         (c >= 0x1D1BB && c <= 0x1D1C0) || (c >= 0x2F800 && c <= 0x2FA1D) ||
         (c >= 0x1161 && c <= 0x1175) || (c >= 0x11A8 && c <= 0x11C2);
}

/// Throws FormatError unless `text` is certainly in NFC (see the file comment).
inline void require_nfc(std::string_view text) {
  bool ascii = true;
  for (char ch : text) ascii = ascii && static_cast<unsigned char>(ch) < 0x80;
  if (ascii) return;
  static const Regex marks("\\p{M}", "NFC normalizer");
  std::size_t suspect = text.size();
  const auto spans = marks.find_all(text);
  if (!spans.empty()) suspect = spans.front().first;
  std::size_t i = 0;
  while (i < suspect) {
    const std::size_t at = i;
    if (nfc_singleton(utf8_next(text, i))) {
      suspect = at;
      break;
    }
  }
  if (suspect == text.size()) return;
  std::size_t end = suspect;
  const std::uint32_t c = utf8_next(text, end);
  char hex[16];
  std::snprintf(hex, sizeof hex, "U+%04X", static_cast<unsigned>(c));
  throw FormatError(
      std::string("mbok: tokenizer normalizer NFC: text holds ") + hex + " at byte " +
      std::to_string(suspect) +
      ", which may need Unicode composition; mbok's NFC passes only text already in NFC "
      "(normalize the input to NFC first)");
}

}  // namespace mbok::tokenizer_detail
