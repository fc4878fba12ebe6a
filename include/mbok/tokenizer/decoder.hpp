#pragma once
/// \file
/// tokenizer.json "decoder": turns the tokens of ids back into text, as the reference's
/// decode_chain: each decoder maps the list of token strings to a new list, and the result is
/// their concatenation. Supported: Sequence, ByteLevel (GPT-2 code points back to bytes; bytes
/// that are not UTF-8 become U+FFFD), Replace, ByteFallback (<0xAB> runs back to bytes; U+FFFD
/// per byte when a run is not UTF-8), Fuse, Strip and Metaspace. With no decoder the tokens
/// are joined with spaces, as in the reference.

#include <string>
#include <vector>

#include "byte_level.hpp"
#include "json_access.hpp"
#include "normalizer.hpp"
#include "regex.hpp"
#include "utf8.hpp"

namespace mbok::tokenizer_detail {

class Decoder {
 public:
  Decoder() = default;

  Decoder(const JsonSource& src, const Json& j, const std::string& path) {
    present_ = !j.is_null();
    add(src, j, path);
  }

  /// The text of `tokens`.
  std::string decode(std::vector<std::string> tokens) const {
    if (!present_) {
      std::string out;
      for (std::size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
      return out;
    }
    for (const Step& s : steps_) tokens = apply(s, std::move(tokens));
    std::string out;
    for (const std::string& t : tokens) out += t;
    return out;
  }

 private:
  enum class Kind { byte_level, replace, byte_fallback, fuse, strip, metaspace };
  struct Step {
    Kind kind;
    Regex pattern;                    // Replace
    std::string text;                 // Replace's content, Strip's content, Metaspace's replacement
    std::size_t start = 0, stop = 0;  // Strip
    bool prepend = true;              // Metaspace: prepend_scheme is not "never"
  };

  static int byte_of_token(const std::string& t) {
    // "<0xAB>" exactly.
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; ++k) {
      const char c = t[static_cast<std::size_t>(k)];
      int d;
      if (c >= '0' && c <= '9')
        d = c - '0';
      else if (c >= 'A' && c <= 'F')
        d = c - 'A' + 10;
      else if (c >= 'a' && c <= 'f')
        d = c - 'a' + 10;
      else
        return -1;
      v = v * 16 + d;
    }
    return v;
  }

  static std::vector<std::string> apply(const Step& s, std::vector<std::string> tokens) {
    switch (s.kind) {
      case Kind::byte_level: {
        std::string bytes;
        for (const std::string& t : tokens)
          if (!byte_level_to_bytes(t, bytes)) bytes += t;
        return {utf8_lossy(bytes)};
      }
      case Kind::replace:
        for (std::string& t : tokens) t = Normalizer::replace_all(s.pattern, t, s.text);
        return tokens;
      case Kind::byte_fallback: {
        std::vector<std::string> out;
        std::string run;
        std::size_t run_len = 0;
        const auto flush = [&] {
          if (run_len == 0) return;
          if (utf8_invalid_offset(run) == run.size())
            out.push_back(run);
          else
            for (std::size_t k = 0; k < run_len; ++k) out.push_back("\xEF\xBF\xBD");
          run.clear();
          run_len = 0;
        };
        for (std::string& t : tokens) {
          const int b = byte_of_token(t);
          if (b >= 0) {
            run += static_cast<char>(b);
            ++run_len;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        return out;
      }
      case Kind::fuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        return {all};
      }
      case Kind::strip:
        for (std::string& t : tokens) t = strip(t, s.text, s.start, s.stop);
        return tokens;
      case Kind::metaspace:
        for (std::size_t i = 0; i < tokens.size(); ++i) {
          // As the reference: in the first token every replacement character is dropped
          // (unless prepend_scheme is "never"); elsewhere it becomes a space.
          std::string out;
          const std::string& t = tokens[i];
          std::size_t at = 0;
          while (at < t.size()) {
            if (t.compare(at, s.text.size(), s.text) == 0) {
              if (!(i == 0 && s.prepend)) out += ' ';
              at += s.text.size();
            } else {
              out += t[at++];
            }
          }
          tokens[i] = std::move(out);
        }
        return tokens;
    }
    return tokens;
  }

  /// Up to `start` leading and `stop` trailing copies of the character `c` removed.
  static std::string strip(const std::string& t, const std::string& c, std::size_t start,
                           std::size_t stop) {
    std::size_t b = 0, e = t.size();
    for (std::size_t k = 0; k < start && b + c.size() <= e && t.compare(b, c.size(), c) == 0; ++k)
      b += c.size();
    for (std::size_t k = 0;
         k < stop && e >= b + c.size() && t.compare(e - c.size(), c.size(), c) == 0; ++k)
      e -= c.size();
    return t.substr(b, e - b);
  }

  void add(const JsonSource& src, const Json& j, const std::string& path) {
    if (j.is_null()) return;
    const std::string type = src.type_of(j, path);
    Step s{Kind::fuse, {}, {}, 0, 0, true};
    if (type == "Sequence") {
      const Json& list = src.member(j, "decoders", path);
      if (!list.is_array()) src.fail(path + ".decoders", "expected an array");
      for (std::size_t i = 0; i < list.size(); ++i)
        add(src, list[i], path + ".decoders[" + std::to_string(i) + "]");
      return;
    } else if (type == "ByteLevel") {
      s.kind = Kind::byte_level;
    } else if (type == "Replace") {
      s.kind = Kind::replace;
      s.pattern = pattern_regex(src, src.member(j, "pattern", path), path + ".pattern");
      s.text = src.string_at(j, "content", path);
    } else if (type == "ByteFallback") {
      s.kind = Kind::byte_fallback;
    } else if (type == "Fuse") {
      s.kind = Kind::fuse;
    } else if (type == "Strip") {
      s.kind = Kind::strip;
      s.text = single_char(src, j, "content", path, " ");
      const auto start = src.int_or(j, "start", path, 0), stop = src.int_or(j, "stop", path, 0);
      if (start < 0 || stop < 0) src.fail(path, "negative start or stop");
      s.start = static_cast<std::size_t>(start);
      s.stop = static_cast<std::size_t>(stop);
    } else if (type == "Metaspace") {
      s.kind = Kind::metaspace;
      s.text = single_char(src, j, "replacement", path, "\xE2\x96\x81");
      const bool add_prefix_space = src.bool_or(j, "add_prefix_space", path, true);
      const std::string scheme =
          src.string_or(j, "prepend_scheme", path, add_prefix_space ? "always" : "never");
      if (scheme != "always" && scheme != "first" && scheme != "never")
        src.fail(path + ".prepend_scheme", "unsupported prepend_scheme \"" + scheme + "\"");
      s.prepend = scheme != "never";
    } else {
      src.fail(path, "unsupported decoder type \"" + type + "\"");
    }
    steps_.push_back(std::move(s));
  }

  bool present_ = false;
  std::vector<Step> steps_;
};

}  // namespace mbok::tokenizer_detail
