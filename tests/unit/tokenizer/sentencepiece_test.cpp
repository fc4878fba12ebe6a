// SentencePiece-style BPE tokenizers (LLaMA-2 / TinyLlama / Mistral layouts) on the hand-made
// vocabulary of fixtures.hpp. Expected ids are worked out by hand below and were cross-checked
// once with the reference implementation (Hugging Face tokenizers.js 0.2.0) on the same
// tokenizer.json files.

#include "tokenizer_support.hpp"

using namespace mbok;
using namespace mbok::test;

TEST_CASE("SentencePiece BPE: Prepend and Replace normalizers, merges", "[tokenizer]") {
  const Tokenizer tok = load(llama2_style());
  // "hello world" -> "▁hello▁world": ▁ h (0), l l (1), ▁h e (2), ▁he ll (3), ▁hell o (4) ->
  // ▁hello = 274; ▁ w (5), o r (6), ▁w or (7), l d (8), ▁wor ld (9) -> ▁world = 279.
  CHECK(tok.encode("hello world") == Ids{274, 279});
  // A leading space stays: "▁▁hello" -> ▁ (259) ▁hello (274).
  CHECK(tok.encode(" hello") == Ids{259, 274});
  // "a  b" -> "▁a▁▁b": a = 268; b is not in the vocabulary -> <0x62> = 3 + 0x62 = 101.
  CHECK(tok.encode("a  b") == Ids{259, 268, 259, 259, 101});
  CHECK(tok.decode({259, 268, 259, 259, 101}) == "a  b");
}

TEST_CASE("SentencePiece BPE: byte fallback for characters missing from the vocabulary",
          "[tokenizer]") {
  const Tokenizer tok = load(llama2_style());
  // "€" = E2 82 AC -> <0xE2> <0x82> <0xAC> = 229 133 175, after ▁ (259).
  CHECK(tok.encode("€") == Ids{259, 229, 133, 175});
  CHECK(tok.decode({259, 229, 133, 175}) == "€");
  CHECK(tok.encode("€€ x") == Ids{259, 229, 133, 175, 229, 133, 175, 259, 123});
  // Bytes that are not UTF-8 decode to one U+FFFD each (ByteFallback).
  CHECK(tok.decode({229, 133}) == "\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(tok.id_to_token(229) == "<0xE2>");
}

TEST_CASE("SentencePiece BPE: unk_token with fuse_unk when byte_fallback is off", "[tokenizer]") {
  Json j = llama2_style();
  j["model"]["byte_fallback"] = false;
  // "€€ x": ▁ (259), two unknown characters fused into one <unk> (0), ▁ (259), x unknown (0).
  CHECK(load(j).encode("€€ x") == Ids{259, 0, 259, 0});
  j["model"]["fuse_unk"] = false;
  CHECK(load(j).encode("€€ x") == Ids{259, 0, 0, 259, 0});
}

TEST_CASE("SentencePiece BPE: special tokens, TemplateProcessing, skip_special_tokens",
          "[tokenizer]") {
  const Tokenizer tok = load(llama2_style());
  // Added tokens are found in the raw text; each side is normalized on its own, so "world"
  // after </s> gets its own ▁ (the reference's, and LLaMA-2's "legacy", behaviour).
  CHECK(tok.encode("hello</s>world") == Ids{274, 2, 279});
  CHECK(tok.decode({274, 2, 279}) == "hello</s> world");
  CHECK(tok.decode({274, 2, 279}, true) == "hello world");
  CHECK(tok.encode("hello world", true) == Ids{1, 274, 279});
  CHECK(tok.encode("<s>hello", true) == Ids{1, 1, 274});
  CHECK(tok.decode({1, 274, 279}, true) == "hello world");
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.vocab_size() == 280);
}

TEST_CASE("SentencePiece BPE: Metaspace pre-tokenizer and decoder (prepend_scheme first)",
          "[tokenizer]") {
  const Tokenizer tok = load(metaspace_style());
  CHECK(tok.encode("hello world") == Ids{274, 279});
  // "first": only the piece at the start of the input gets ▁; "world" after </s> does not:
  // w (264) or (276) ld (278).
  CHECK(tok.encode("hello</s>world") == Ids{274, 2, 264, 276, 278});
  // A piece that already starts with ▁ gets no second one.
  CHECK(tok.encode(" hello") == Ids{274});
  // The Metaspace decoder drops the replacement characters of the first token.
  CHECK(tok.decode({274, 279}) == "hello world");
  CHECK(tok.decode({274, 2, 264, 276, 278}) == "hello</s>world");

  Json always = metaspace_style();
  always["pre_tokenizer"]["prepend_scheme"] = "always";
  CHECK(load(always).encode("hello</s>world") == Ids{274, 2, 279});
}

TEST_CASE("SentencePiece BPE: round trips (text not starting with a space)", "[tokenizer]") {
  const Tokenizer tok = load(llama2_style());
  for (const std::string text :
       {"hello world", "Hello, wörld! Straße Привет мир 你好世界", "a  \n\n b",
        "emoji 😀👍🏽 ok", "12345 and don't I'M", "hello</s>world"}) {
    INFO(text);
    const Ids ids = tok.encode(text);
    const std::string expected = text == std::string("hello</s>world") ? "hello</s> world" : text;
    CHECK(tok.decode(ids) == expected);
    CHECK(stream_decode(tok, ids, false) == expected);
  }
}

TEST_CASE("DecodeStream: SentencePiece's leading space and whole characters", "[tokenizer]") {
  const Tokenizer tok = load(llama2_style());
  DecodeStream stream(tok);
  CHECK(stream.push(1) == "");  // <s>, skipped
  CHECK(stream.push(274) == "hello");
  CHECK(stream.push(279) == " world");
  CHECK(stream.push(259) == " ");  // "▁" alone: a space (only the first token's is dropped)
  // € arrives byte by byte: nothing until the character is whole.
  CHECK(stream.push(229) == "");
  CHECK(stream.push(133) == "");
  CHECK(stream.push(175) == "€");
  CHECK(stream.flush() == "");

  // A stream that ends inside a character flushes the U+FFFD decode() shows.
  DecodeStream cut(tok);
  CHECK(cut.push(274) == "hello");
  CHECK(cut.push(229) == "");
  CHECK(cut.flush() == "\xEF\xBF\xBD");
}
