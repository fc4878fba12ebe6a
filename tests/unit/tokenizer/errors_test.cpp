// Files mbok cannot read faithfully are FormatErrors that name the file and what is wrong.

#include <cstdio>
#include <fstream>

#include "tokenizer_support.hpp"

using namespace mbok;
using namespace mbok::test;

namespace {
std::string error_of(const Json& j, const std::string& name = "bad/tokenizer.json") {
  try {
    Tokenizer::from_json(j.dump(), name);
  } catch (const FormatError& e) {
    return e.what();
  }
  FAIL("no FormatError");
  return {};
}
}  // namespace

TEST_CASE("tokenizer errors: truncated and unreadable files", "[tokenizer]") {
  const std::string text = llama2_style().dump(1);
  const std::string path = "mbok_tokenizer_truncated.json";
  std::ofstream(path, std::ios::binary) << text.substr(0, text.size() / 2);
  CHECK_THROWS_AS(Tokenizer::from_file(path), FormatError);
  CHECK_THROWS_WITH(Tokenizer::from_file(path), contains(path) && contains("not valid JSON"));
  std::remove(path.c_str());
  CHECK_THROWS_WITH(Tokenizer::from_file("no/such/tokenizer.json"),
                    contains("no/such/tokenizer.json"));
  CHECK_THROWS_WITH(Tokenizer::from_json("[1, 2]"), contains("expected a JSON object"));
}

TEST_CASE("tokenizer errors: unsupported components are named", "[tokenizer]") {
  Json j = llama2_style();
  j["model"]["type"] = "WordPiece";
  CHECK_THAT(error_of(j), contains("bad/tokenizer.json") && contains("model.type") &&
                              contains("unsupported model type \"WordPiece\""));

  j = llama3_style();
  j["pre_tokenizer"]["pretokenizers"][1] = {{"type", "BertPreTokenizer"}};
  CHECK_THAT(error_of(j), contains("pre_tokenizer.pretokenizers[1]") &&
                              contains("unsupported pre-tokenizer type \"BertPreTokenizer\""));

  j = llama2_style();
  j["normalizer"]["normalizers"][0] = {{"type", "Lowercase"}};
  CHECK_THAT(error_of(j), contains("normalizer.normalizers[0]") &&
                              contains("unsupported normalizer type \"Lowercase\""));

  j = llama2_style();
  j["decoder"]["decoders"][2] = {{"type", "CTC"}};
  CHECK_THAT(error_of(j),
             contains("decoder.decoders[2]") && contains("unsupported decoder type \"CTC\""));

  j = llama2_style();
  j["post_processor"] = {{"type", "Unknown"}};
  CHECK_THAT(error_of(j), contains("unsupported post-processor type \"Unknown\""));

  j = llama3_style();
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways";
  CHECK_THAT(error_of(j), contains("unsupported split behavior \"Sideways\""));

  j = llama3_style();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Regex", "(unclosed"}};
  CHECK_THAT(error_of(j),
             contains("pre_tokenizer.pretokenizers[0].pattern") && contains("does not compile"));

  j = llama2_style();
  j["model"]["continuing_subword_prefix"] = "##";
  CHECK_THAT(error_of(j), contains("model.continuing_subword_prefix"));

  j = llama2_style();
  j["model"]["dropout"] = 0.1;
  CHECK_THAT(error_of(j), contains("model.dropout"));

  j = llama2_style();
  j["truncation"] = {{"max_length", 512}};
  CHECK_THAT(error_of(j), contains("truncation"));
}

TEST_CASE("tokenizer errors: vocabulary and merges", "[tokenizer]") {
  Json j = llama2_style();
  j["model"]["merges"].push_back("q z");
  CHECK_THAT(error_of(j), contains("model.merges[10]") && contains("merge names token \"q\""));

  j = llama3_style();
  j["model"]["merges"].push_back(Json::array({"a", "z"}));
  CHECK_THAT(error_of(j),
             contains("model.merges[13]") && contains("\"az\", which is not in the vocabulary"));

  j = llama2_style();
  j["model"]["merges"].push_back("a b c");
  CHECK_THAT(error_of(j), contains("malformed merge \"a b c\""));

  j = llama2_style();
  j["model"]["merges"].push_back(42);
  CHECK_THAT(error_of(j), contains("model.merges[10]") && contains("malformed merge"));

  j = llama2_style();
  j["model"].erase("vocab");
  CHECK_THAT(error_of(j), contains("model") && contains("missing key \"vocab\""));

  j = llama2_style();
  j.erase("model");
  CHECK_THAT(error_of(j), contains("missing key \"model\""));

  j = llama2_style();
  j["model"]["unk_token"] = "<nope>";
  CHECK_THAT(error_of(j), contains("unk_token \"<nope>\" is not in the vocabulary"));

  j = llama2_style();
  j["added_tokens"][0].erase("id");
  CHECK_THAT(error_of(j), contains("added_tokens[0]") && contains("missing key \"id\""));
}

TEST_CASE("NFC normalizer: text already in NFC passes, other text is an error", "[tokenizer]") {
  Json j = llama3_style();
  j["normalizer"] = {{"type", "NFC"}};
  const Tokenizer tok = load(j);
  const Tokenizer plain = load(llama3_style());
  // Precomposed é (U+00E9), Cyrillic, CJK and Hangul syllables are NFC already.
  const std::string nfc = "caf\xC3\xA9 Привет 你好 한국어";
  CHECK(tok.encode(nfc) == plain.encode(nfc));
  // e + U+0301 COMBINING ACUTE ACCENT would compose: not silently tokenized differently.
  CHECK_THROWS_WITH(tok.encode("cafe\xCC\x81"), contains("U+0301") && contains("NFC"));
  // U+212B ANGSTROM SIGN is replaced by U+00C5 under NFC.
  CHECK_THROWS_WITH(tok.encode("\xE2\x84\xAB"), contains("U+212B"));
}
