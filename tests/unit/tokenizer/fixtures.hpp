#pragma once
// Hand-made tokenizer.json files for the tokenizer tests, built as JSON here so that their
// vocabularies stay small enough to reason about. Each vocabulary's ids are listed in the
// comments; the tests work out expected ids from them by hand.

#include <mbok/tokenizer/byte_level.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace mbok::test {

using Json = nlohmann::ordered_json;

/// LLaMA-3's pre-tokenization pattern.
inline const char* llama3_pattern() {
  return "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
         "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
         "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
}

inline Json added_token(std::int32_t id, const std::string& content, bool special = true) {
  return Json{{"id", id},          {"content", content}, {"single_word", false},
              {"lstrip", false},   {"rstrip", false},    {"normalized", !special},
              {"special", special}};
}

/// A byte-level BPE in LLaMA-3's layout (Split with LLaMA-3's pattern, then ByteLevel without
/// regex; ignore_merges; TemplateProcessing that puts <|begin_of_text|> first).
/// Vocabulary: ids 0..255 are the bytes (id b is byte b: 'a' = 97, ' ' = 'Ġ' = 32, ...), then
///   256 "bc"   257 "ab"   258 "xyz"  259 "xy"   260 "he"   261 "ll"    262 "hell"
///   263 "hello" 264 "Ġw"  265 "or"   266 "Ġwor" 267 "Ġworl" 268 "Ġworld" 269 "aa"
/// Merges by rank (as ["a", "b"] pairs):
///   0 b c   1 a b   2 x y   3 h e   4 l l   5 he ll   6 hell o   7 Ġ w   8 o r   9 Ġw or
///   10 Ġwor l   11 Ġworl d   12 a a
/// ("xyz" is in the vocabulary but no merge makes it: only ignore_merges gives it.)
/// Added (special): 300 <|begin_of_text|>, 301 <|end_of_text|>, 302 <|eot_id|>.
inline Json llama3_style(bool ignore_merges = true) {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b)
    vocab[tokenizer_detail::byte_to_unicode(static_cast<unsigned char>(b))] = b;
  const std::vector<std::string> extra = {"bc",    "ab", "xyz", "xy",   "he",    "ll",     "hell",
                                          "hello", "Ġw", "or",  "Ġwor", "Ġworl", "Ġworld", "aa"};
  for (std::size_t i = 0; i < extra.size(); ++i) vocab[extra[i]] = 256 + static_cast<int>(i);
  Json merges = Json::array();
  for (const auto& [a, b] : std::vector<std::pair<std::string, std::string>>{{"b", "c"},
                                                                             {"a", "b"},
                                                                             {"x", "y"},
                                                                             {"h", "e"},
                                                                             {"l", "l"},
                                                                             {"he", "ll"},
                                                                             {"hell", "o"},
                                                                             {"Ġ", "w"},
                                                                             {"o", "r"},
                                                                             {"Ġw", "or"},
                                                                             {"Ġwor", "l"},
                                                                             {"Ġworl", "d"},
                                                                             {"a", "a"}})
    merges.push_back(Json::array({a, b}));
  Json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] =
      Json::array({added_token(300, "<|begin_of_text|>"), added_token(301, "<|end_of_text|>"),
                   added_token(302, "<|eot_id|>")});
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers", Json::array({Json{{"type", "Split"},
                                          {"pattern", {{"Regex", llama3_pattern()}}},
                                          {"behavior", "Isolated"},
                                          {"invert", false}},
                                     Json{{"type", "ByteLevel"},
                                          {"add_prefix_space", false},
                                          {"trim_offsets", true},
                                          {"use_regex", false}}})}};
  j["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       Json::array(
           {Json{{"type", "ByteLevel"},
                 {"add_prefix_space", true},
                 {"trim_offsets", false},
                 {"use_regex", true}},
            Json{{"type", "TemplateProcessing"},
                 {"single", Json::array({Json{{"SpecialToken",
                                               {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                                         Json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                 {"pair", Json::array({Json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                       Json{{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
                 {"special_tokens",
                  {{"<|begin_of_text|>",
                    {{"id", "<|begin_of_text|>"},
                     {"ids", Json::array({300})},
                     {"tokens", Json::array({"<|begin_of_text|>"})}}}}}}})}};
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
                {"ignore_merges", ignore_merges},
                {"vocab", vocab},
                {"merges", merges}};
  return j;
}

/// GPT-2's layout: the same vocabulary and merges under a ByteLevel pre-tokenizer with its
/// built-in pattern, no ignore_merges, no post-processor template; <|endoftext|> is 303.
inline Json gpt2_style() {
  Json j = llama3_style(false);
  j["pre_tokenizer"] = {{"type", "ByteLevel"},
                        {"add_prefix_space", false},
                        {"trim_offsets", true},
                        {"use_regex", true}};
  j["post_processor"] = {{"type", "ByteLevel"},
                         {"add_prefix_space", true},
                         {"trim_offsets", false},
                         {"use_regex", true}};
  j["added_tokens"] = Json::array({added_token(303, "<|endoftext|>")});
  j["model"]["vocab"].erase("<|begin_of_text|>");
  j["model"]["vocab"].erase("<|end_of_text|>");
  j["model"]["vocab"].erase("<|eot_id|>");
  j["model"]["vocab"]["<|endoftext|>"] = 303;
  return j;
}

/// A SentencePiece-style BPE in LLaMA-2's layout: normalizer Prepend("▁") + Replace(" " -> "▁"),
/// no pre-tokenizer, byte_fallback, fuse_unk, merges as "a b" strings, the decoder
/// Replace("▁" -> " "), ByteFallback, Fuse, Strip(" ", 1, 0), and a template that puts <s> first.
/// Vocabulary:
///   0 <unk>  1 <s>  2 </s>  3..258 <0x00>..<0xFF> (byte b is 3 + b: <0xE2> = 229, <0x82> = 133,
///   <0xAC> = 175)
///   259 ▁  260 e  261 h  262 l  263 o  264 w  265 r  266 d  267 t  268 a  269 c
///   270 ▁h  271 ll  272 ▁he  273 ▁hell  274 ▁hello  275 ▁w  276 or  277 ▁wor  278 ld  279 ▁world
/// Merges by rank: 0 "▁ h"  1 "l l"  2 "▁h e"  3 "▁he ll"  4 "▁hell o"  5 "▁ w"  6 "o r"
///   7 "▁w or"  8 "l d"  9 "▁wor ld"
inline Json llama2_style() {
  Json vocab = Json::object();
  vocab["<unk>"] = 0;
  vocab["<s>"] = 1;
  vocab["</s>"] = 2;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  const std::vector<std::string> pieces = {"▁",     "e",      "h",  "l",  "o",    "w",  "r",
                                           "d",     "t",      "a",  "c",  "▁h",   "ll", "▁he",
                                           "▁hell", "▁hello", "▁w", "or", "▁wor", "ld", "▁world"};
  for (std::size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i]] = 259 + static_cast<int>(i);
  Json merges = Json::array(
      {"▁ h", "l l", "▁h e", "▁he ll", "▁hell o", "▁ w", "o r", "▁w or", "l d", "▁wor ld"});
  Json added = Json::array();
  for (int i = 0; i < 3; ++i) {
    Json t = added_token(
        i, std::vector<std::string>{"<unk>", "<s>", "</s>"}[static_cast<std::size_t>(i)]);
    t["normalized"] = false;
    added.push_back(t);
  }
  Json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       Json::array({Json{{"type", "Prepend"}, {"prepend", "▁"}},
                    Json{{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}})}};
  j["pre_tokenizer"] = nullptr;
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", Json::array({Json{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                              Json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"pair", Json::array({Json{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                            Json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                            Json{{"SpecialToken", {{"id", "<s>"}, {"type_id", 1}}}},
                            Json{{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
      {"special_tokens",
       {{"<s>", {{"id", "<s>"}, {"ids", Json::array({1})}, {"tokens", Json::array({"<s>"})}}}}}};
  j["decoder"] = {
      {"type", "Sequence"},
      {"decoders",
       Json::array({Json{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                    Json{{"type", "ByteFallback"}}, Json{{"type", "Fuse"}},
                    Json{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", "<unk>"},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", true},
                {"byte_fallback", true},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", merges}};
  return j;
}

/// The same model in the older Metaspace layout (Mistral / TinyLlama files): no normalizer,
/// pre-tokenizer and decoder Metaspace with prepend_scheme "first".
inline Json metaspace_style() {
  Json j = llama2_style();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", false}};
  j["decoder"] = {
      {"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", false}};
  return j;
}

}  // namespace mbok::test
