#pragma once
/// \file
/// A reader of Hugging Face `tokenizer.json` files with a BPE model: the byte-level family
/// (GPT-2, LLaMA-3, SmolLM, Qwen2: ByteLevel / Split pre-tokenizers, ByteLevel decoder) and
/// the SentencePiece-style family (LLaMA-2, TinyLlama, Mistral: Prepend/Replace normalizers or
/// the Metaspace pre-tokenizer, byte_fallback, the Replace/ByteFallback/Fuse/Strip decoders).
/// encode() gives the ids the reference library gives; a component or option that mbok does
/// not implement is a FormatError when the file is read, naming its JSON path and type, so
/// text is never tokenized differently in silence.
///
/// Needs nlohmann/json and PCRE2 (target mbok::pcre2; Debian: libpcre2-dev).
///
///   auto tok = mbok::Tokenizer::from_file("tokenizer.json");
///   std::vector<std::int32_t> ids = tok.encode("Hello world", /*add_special_tokens=*/true);
///   std::string text = tok.decode(ids, /*skip_special_tokens=*/true);

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "added_vocabulary.hpp"
#include "bpe.hpp"
#include "decoder.hpp"
#include "json_access.hpp"
#include "normalizer.hpp"
#include "post_processor.hpp"
#include "pretokenizer.hpp"
#include "trainer.hpp"
#include "utf8.hpp"

namespace mbok {

/// A tokenizer read from a tokenizer.json. Immutable once built: encode/decode may run
/// concurrently from several threads.
class Tokenizer {
 public:
  /// Reads the tokenizer.json at `path`. Throws FormatError naming the file when it cannot
  /// be read, is not JSON (e.g. truncated) or describes something unsupported.
  static Tokenizer from_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw FormatError("mbok: cannot open tokenizer file " + path);
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw FormatError("mbok: cannot read tokenizer file " + path);
    return from_json(text.str(), path);
  }

  /// Parses tokenizer.json `text`; `source` names it in error messages.
  static Tokenizer from_json(const std::string& text,
                             const std::string& source = "tokenizer.json") {
    Tokenizer t;
    t.impl_ = std::make_shared<Impl>(text, source);
    return t;
  }

  /// The ids of `text` (UTF-8; InvalidArgument when it is not). With `add_special_tokens`
  /// the post-processor's template is applied (e.g. LLaMA's BOS first).
  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens = false) const {
    return impl_->encode(text, add_special_tokens);
  }

  /// The text of `ids`; with `skip_special_tokens` the added tokens marked special are left
  /// out. An id outside the vocabulary is an InvalidArgument.
  std::string decode(const std::vector<std::int32_t>& ids, bool skip_special_tokens = false) const {
    return impl_->decode(ids.data(), ids.size(), skip_special_tokens);
  }

  /// Largest id + 1 over the model's vocabulary and the added tokens.
  std::size_t vocab_size() const { return impl_->vocab_size; }

  /// The id of `token` (an added token's content or a raw vocabulary string), if any.
  std::optional<std::int32_t> token_to_id(std::string_view token) const {
    const auto it = impl_->added_by_content.find(std::string(token));
    if (it != impl_->added_by_content.end()) return impl_->added[it->second].id;
    return impl_->model.token_to_id(token);
  }

  /// The raw string of `id` (for byte-level vocabularies in GPT-2's code points, e.g. "Ġthe").
  /// Throws InvalidArgument for an id with no token.
  std::string id_to_token(std::int32_t id) const { return impl_->token_of(id); }

  /// The beginning-of-sequence id: the token the post-processor puts first, else an added
  /// token named "<s>", "<|begin_of_text|>", "<bos>" or "<|endoftext|>"; nullopt if none.
  std::optional<std::int32_t> bos_id() const { return impl_->bos; }
  /// The end-of-sequence id: the token the post-processor puts last, else an added token
  /// named "</s>", "<|end_of_text|>", "<|endoftext|>", "<|eot_id|>", "<|im_end|>" or "<eos>".
  std::optional<std::int32_t> eos_id() const { return impl_->eos; }

  /// True when `id` is an added token marked special.
  bool is_special(std::int32_t id) const {
    const auto it = impl_->added_by_id.find(id);
    return it != impl_->added_by_id.end() && impl_->added[it->second].special;
  }

  /// The tokenizer.json text this tokenizer was read from.
  const std::string& json() const { return impl_->text; }

 private:
  friend class DecodeStream;
  Tokenizer() = default;  // only from_file / from_json make one

  struct Impl {
    std::string text, source;
    tokenizer_detail::Normalizer normalizer;
    tokenizer_detail::PreTokenizer pre_tokenizer;
    tokenizer_detail::BpeModel model;
    tokenizer_detail::PostProcessor post_processor;
    tokenizer_detail::Decoder decoder;
    std::vector<tokenizer_detail::AddedToken> added;
    std::unordered_map<std::string, std::size_t> added_by_content;
    std::unordered_map<std::int32_t, std::size_t> added_by_id;
    tokenizer_detail::AddedMatcher raw_matcher, normalized_matcher;
    std::size_t vocab_size = 0;
    std::optional<std::int32_t> bos, eos;

    Impl(const std::string& json_text, const std::string& name) : text(json_text), source(name) {
      using tokenizer_detail::Json;
      const tokenizer_detail::JsonSource src{name};
      Json j;
      try {
        j = Json::parse(json_text);
      } catch (const nlohmann::json::parse_error& e) {
        throw FormatError("mbok: " + name + ": not valid JSON (truncated or corrupt): " + e.what());
      }
      if (!j.is_object()) src.fail("(top level)", "expected a JSON object");
      if (src.optional(j, "truncation") != nullptr)
        src.fail("truncation", "truncation is not supported (mbok reads files where it is null)");
      if (const Json* p = src.optional(j, "padding"); p != nullptr && p->is_object()) {
        const Json* strategy = src.optional(*p, "strategy");
        if (strategy != nullptr && strategy->is_object() && strategy->contains("Fixed"))
          src.fail("padding.strategy", "fixed-length padding is not supported");
      }
      model = tokenizer_detail::BpeModel(src, src.member(j, "model", "(top level)"), "model");
      const Json null;
      const auto part = [&](const char* key) -> const Json& {
        const Json* v = src.optional(j, key);
        return v != nullptr ? *v : null;
      };
      normalizer = tokenizer_detail::Normalizer(src, part("normalizer"), "normalizer");
      pre_tokenizer = tokenizer_detail::PreTokenizer(src, part("pre_tokenizer"), "pre_tokenizer");
      post_processor =
          tokenizer_detail::PostProcessor(src, part("post_processor"), "post_processor");
      decoder = tokenizer_detail::Decoder(src, part("decoder"), "decoder");
      added = tokenizer_detail::parse_added_tokens(src, src.optional(j, "added_tokens"));

      vocab_size = model.size();
      for (std::size_t i = 0; i < added.size(); ++i) {
        const auto& a = added[i];
        added_by_content[a.content] = i;
        added_by_id[a.id] = i;
        vocab_size = std::max(vocab_size, static_cast<std::size_t>(a.id) + 1);
        if (a.normalized)
          normalized_matcher.add(normalizer.apply(a.content), i);
        else
          raw_matcher.add(a.content, i);
      }

      raw_matcher.finish();
      normalized_matcher.finish();

      bos = post_processor.first_before();
      if (!bos) bos = named({"<s>", "<|begin_of_text|>", "<bos>", "<|endoftext|>"});
      eos = post_processor.last_after();
      if (!eos)
        eos = named(
            {"</s>", "<|end_of_text|>", "<|endoftext|>", "<|eot_id|>", "<|im_end|>", "<eos>"});
    }

    std::optional<std::int32_t> named(std::initializer_list<const char*> names) const {
      for (const char* n : names) {
        const auto it = added_by_content.find(n);
        if (it != added_by_content.end()) return added[it->second].id;
      }
      return std::nullopt;
    }

    std::string token_of(std::int32_t id) const {
      const auto it = added_by_id.find(id);
      if (it != added_by_id.end()) return added[it->second].content;
      const std::string* t = model.token(id);
      if (t == nullptr || (t->empty() && !model.token_to_id(""))) {
        throw InvalidArgument("mbok: " + source + ": token id " + std::to_string(id) +
                              " is not in the vocabulary (size " + std::to_string(vocab_size) +
                              ")");
      }
      return *t;
    }

    std::vector<std::int32_t> encode(std::string_view input, bool add_special_tokens) const {
      const std::size_t bad = tokenizer_detail::utf8_invalid_offset(input);
      if (bad != input.size())
        throw InvalidArgument("mbok: Tokenizer::encode: text is not valid UTF-8 (at byte " +
                              std::to_string(bad) + ")");
      std::vector<std::int32_t> ids;
      ids.reserve(input.size() / 3 + 8);
      // Pieces repeat a lot in running text: their ids are worked out once per call.
      std::unordered_map<std::string, std::vector<std::int32_t>> cache;
      std::vector<tokenizer_detail::Segment> raw, normalized;
      raw_matcher.split(std::string(input), true, added, raw);
      for (tokenizer_detail::Segment& seg : raw) {
        if (seg.id >= 0) {
          ids.push_back(seg.id);
          continue;
        }
        normalized.clear();
        normalized_matcher.split(normalizer.apply(std::move(seg.text)), seg.at_start, added,
                                 normalized);
        for (tokenizer_detail::Segment& part : normalized) {
          if (part.id >= 0) {
            ids.push_back(part.id);
            continue;
          }
          std::vector<tokenizer_detail::Piece> pieces;
          pieces.push_back(tokenizer_detail::Piece{std::move(part.text), part.at_start});
          for (const tokenizer_detail::Piece& p : pre_tokenizer.apply(std::move(pieces))) {
            if (p.text.size() > 256) {
              model.tokenize(p.text, ids);
              continue;
            }
            auto it = cache.find(p.text);
            if (it == cache.end()) {
              std::vector<std::int32_t> word;
              model.tokenize(p.text, word);
              it = cache.emplace(p.text, std::move(word)).first;
            }
            ids.insert(ids.end(), it->second.begin(), it->second.end());
          }
        }
      }
      if (add_special_tokens) ids = post_processor.apply(std::move(ids));
      return ids;
    }

    std::string decode(const std::int32_t* ids, std::size_t n, bool skip_special_tokens) const {
      std::vector<std::string> tokens;
      tokens.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        const auto it = added_by_id.find(ids[i]);
        if (it != added_by_id.end() && skip_special_tokens && added[it->second].special) continue;
        tokens.push_back(token_of(ids[i]));
      }
      return decoder.decode(std::move(tokens));
    }
  };

  std::shared_ptr<const Impl> impl_;
};

/// Incremental decoding for streaming generation: push ids one at a time and get the text
/// that is complete so far. A push returns "" while the text would end in the middle of a
/// UTF-8 character (or with U+FFFD); SentencePiece's rule that drops the first token's
/// leading space applies once, at the start of the stream. The concatenation of all pushes
/// and flush() equals decode() over all the ids. (The reference's DecodeStream: the ids since
/// the last emitted text are decoded after a few ids of context, and the new suffix emitted.)
class DecodeStream {
 public:
  explicit DecodeStream(const Tokenizer& tokenizer, bool skip_special_tokens = true)
      : impl_(tokenizer.impl_), skip_special_(skip_special_tokens) {}

  /// Adds `id`; returns the text it completes (possibly empty).
  std::string push(std::int32_t id) {
    if (prefix_.empty() && !ids_.empty()) {
      std::string new_prefix = decode(0);
      if (!ends_with_replacement(new_prefix)) {
        prefix_ = std::move(new_prefix);
        prefix_index_ = ids_.size();
      }
    }
    ids_.push_back(id);
    std::string text = decode(0);
    if (text.size() <= prefix_.size() || ends_with_replacement(text)) return {};
    if (text.compare(0, prefix_.size(), prefix_) != 0)
      throw InvalidArgument(
          "mbok: DecodeStream: the decoded text no longer starts with what was emitted");
    std::string fresh = text.substr(prefix_.size());
    const std::size_t new_prefix_index = ids_.size() - prefix_index_;
    ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_index_));
    prefix_ = decode(0);
    prefix_index_ = new_prefix_index;
    return fresh;
  }

  /// The text still held back (an incomplete character at the end, shown as U+FFFD as
  /// decode() shows it); the stream then starts over.
  std::string flush() {
    std::string out;
    if (!ids_.empty()) {
      const std::string text = decode(0);
      if (text.size() > prefix_.size() && text.compare(0, prefix_.size(), prefix_) == 0)
        out = text.substr(prefix_.size());
    }
    ids_.clear();
    prefix_.clear();
    prefix_index_ = 0;
    return out;
  }

 private:
  static bool ends_with_replacement(const std::string& s) {
    return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
  }
  std::string decode(std::size_t from) const {
    return impl_->decode(ids_.data() + from, ids_.size() - from, skip_special_);
  }

  std::shared_ptr<const Tokenizer::Impl> impl_;
  bool skip_special_;
  std::vector<std::int32_t> ids_;
  std::string prefix_;
  std::size_t prefix_index_ = 0;
};

}  // namespace mbok
