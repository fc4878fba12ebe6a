// Hugging Face checkpoint directories: write + read round trips (one file and shards; F32
// exact, F16 and BF16 against reference roundings), the layout of written directories, and
// malformed directories, each rejected with a FormatError naming what is wrong.
#include <mbok/io/hf_checkpoint.hpp>
#include <mbok/llama/hf_model.hpp>
#include <mbok/llama/hf_writer.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "catch.hpp"
#include "unit/io/io_support.hpp"

using namespace mbok;
using namespace mbok::llama;
using test::require_format_error;
using test::TempDir;

namespace {

LlamaConfig tiny_config() {
  LlamaConfig c;
  c.vocab_size = 40;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.max_position_embeddings = 64;
  c.bos_token_ids = {1};
  c.eos_token_ids = {2};
  return c;
}

std::vector<float> values_of(const HfTensor& t) {
  std::vector<float> v(t.numel());
  t.fill(0, v.size(), v.data());
  return v;
}

// BF16 by its definition: the nearest of the two neighbouring bfloat16 values (the float's
// top 16 bits, and that plus one ulp), ties to the even one. Finite inputs.
float reference_bf16(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, 4);
  const std::uint32_t lo_bits = bits & 0xffff0000u, hi_bits = lo_bits + 0x10000u;
  float lo, hi;
  std::memcpy(&lo, &lo_bits, 4);
  std::memcpy(&hi, &hi_bits, 4);
  const double dlo = std::fabs(double(x) - double(lo)), dhi = std::fabs(double(hi) - double(x));
  if (dlo < dhi) return lo;
  if (dhi < dlo) return hi;
  return ((lo_bits >> 16) & 1u) == 0 ? lo : hi;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

std::string read_text(const std::string& path) { return HfCheckpoint::read_text(path); }

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_text(path)); }

// A sharded tiny checkpoint in `dir` (shards of at most 4 KB: several files).
void write_sharded(const std::string& dir, DType dtype = DType::f32) {
  const LlamaConfig c = tiny_config();
  write_hf_checkpoint(dir, c, random_llama_tensors(c, 7), dtype, 4096);
}

}  // namespace

TEST_CASE("expected tensor shapes follow the configuration", "[hf]") {
  LlamaConfig c = tiny_config();
  auto shapes = expected_tensor_shapes(c);
  REQUIRE(shapes.size() == 1 + 2 * 9 + 2);
  CHECK(shapes.front().first == "model.embed_tokens.weight");
  CHECK(shapes.front().second == std::vector<std::int64_t>{40, 16});
  std::map<std::string, std::vector<std::int64_t>> m(shapes.begin(), shapes.end());
  CHECK(m.at("model.layers.1.self_attn.q_proj.weight") == std::vector<std::int64_t>{16, 16});
  CHECK(m.at("model.layers.1.self_attn.k_proj.weight") == std::vector<std::int64_t>{8, 16});
  CHECK(m.at("model.layers.1.self_attn.v_proj.weight") == std::vector<std::int64_t>{8, 16});
  CHECK(m.at("model.layers.0.self_attn.o_proj.weight") == std::vector<std::int64_t>{16, 16});
  CHECK(m.at("model.layers.0.mlp.gate_proj.weight") == std::vector<std::int64_t>{24, 16});
  CHECK(m.at("model.layers.0.mlp.down_proj.weight") == std::vector<std::int64_t>{16, 24});
  CHECK(m.at("model.layers.0.post_attention_layernorm.weight") == std::vector<std::int64_t>{16});
  CHECK(m.at("lm_head.weight") == std::vector<std::int64_t>{40, 16});
  c.tie_word_embeddings = true;
  c.attention_bias = true;
  c.mlp_bias = true;
  c.head_dim = 8;  // q_size 32 != hidden
  shapes = expected_tensor_shapes(c);
  m = std::map<std::string, std::vector<std::int64_t>>(shapes.begin(), shapes.end());
  CHECK(m.count("lm_head.weight") == 0);
  CHECK(m.at("model.layers.0.self_attn.q_proj.weight") == std::vector<std::int64_t>{32, 16});
  CHECK(m.at("model.layers.0.self_attn.o_proj.weight") == std::vector<std::int64_t>{16, 32});
  CHECK(m.at("model.layers.0.self_attn.q_proj.bias") == std::vector<std::int64_t>{32});
  CHECK(m.at("model.layers.0.self_attn.o_proj.bias") == std::vector<std::int64_t>{16});
  CHECK(m.at("model.layers.1.mlp.up_proj.bias") == std::vector<std::int64_t>{24});
  CHECK(m.at("model.layers.1.mlp.down_proj.bias") == std::vector<std::int64_t>{16});
}

TEST_CASE("random tensors: deterministic, about the asked spread, norms near 1", "[hf]") {
  const LlamaConfig c = tiny_config();
  const auto a = random_llama_tensors(c, 3, 0.5f), b = random_llama_tensors(c, 3, 0.5f),
             other = random_llama_tensors(c, 4, 0.5f);
  REQUIRE(a.size() == expected_tensor_shapes(c).size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(values_of(a[i]) == values_of(b[i]));
    CHECK(values_of(a[i]) != values_of(other[i]));
    // A range on its own equals the same range of the whole.
    const auto all = values_of(a[i]);
    std::vector<float> part(5);
    a[i].fill(3, 5, part.data());
    CHECK(std::equal(part.begin(), part.end(), all.begin() + 3));
  }
  const auto emb = values_of(a[0]);
  double sum = 0, sq = 0;
  for (float x : emb) {
    sum += x;
    sq += double(x) * x;
  }
  const double mean = sum / emb.size(), sd = std::sqrt(sq / emb.size() - mean * mean);
  CHECK(std::fabs(mean) < 0.1);
  CHECK(sd == Approx(0.5).epsilon(0.1));
  for (const auto& t : a)
    if (t.name.find("norm") != std::string::npos)
      for (float x : values_of(t)) CHECK(std::fabs(x - 1.0f) < 0.2f);
}

TEST_CASE("BF16 conversion rounds to nearest even", "[hf]") {
  // Ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 (odd), so rounds down; 1 + 3 * 2^-8
  // lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even), so rounds up.
  CHECK(bf16_to_float(float_to_bf16(1.0f + std::ldexp(1.0f, -8))) == 1.0f);
  CHECK(bf16_to_float(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))) ==
        1.0f + std::ldexp(1.0f, -6));
  CHECK(bf16_to_float(float_to_bf16(-1.0f - 3 * std::ldexp(1.0f, -8))) ==
        -1.0f - std::ldexp(1.0f, -6));
  const auto t = random_llama_tensors(tiny_config(), 11, 1.0f);
  for (const auto& x : values_of(t[0])) CHECK(bf16_to_float(float_to_bf16(x)) == reference_bf16(x));
}

TEST_CASE("one-file checkpoint: F32 round trip is exact", "[hf]") {
  TempDir tmp;
  const std::string dir = tmp.file("model");
  const LlamaConfig c = tiny_config();
  const auto tensors = random_llama_tensors(c, 1);
  const HfWriteResult r =
      write_hf_checkpoint(dir, c, tensors, DType::f32, 0, std::string("{\"tok\": 1}"));
  CHECK(r.weight_files == std::vector<std::string>{"model.safetensors"});
  const LlamaCheckpoint ck = open_llama_checkpoint(dir);
  CHECK(ck.config.to_json() == c.to_json());
  CHECK_FALSE(ck.checkpoint.sharded());
  CHECK(ck.checkpoint.dir() == dir);
  CHECK(ck.checkpoint.size() == tensors.size());
  CHECK(ck.checkpoint.config_path() == dir + "/config.json");
  CHECK(LlamaConfig::from_json(nlohmann::json::parse(ck.checkpoint.config_text())).to_json() ==
        c.to_json());
  REQUIRE(ck.checkpoint.tokenizer_path());
  CHECK(read_text(*ck.checkpoint.tokenizer_path()) == "{\"tok\": 1}");
  CHECK(ck.checkpoint.total_bytes() == std::filesystem::file_size(dir + "/model.safetensors"));
  // HF readers require __metadata__.format == "pt".
  CHECK(ck.checkpoint.shards()[0].metadata().at("format") == "pt");
  std::uint64_t data = 0;
  for (const auto& t : tensors) {
    const TensorView& v = ck.checkpoint.tensor(t.name);
    CHECK(v.dtype == DType::f32);
    CHECK(v.shape == t.shape);
    CHECK(v.to_vector<float>() == values_of(t));
    data += v.size_bytes;
  }
  CHECK(data == r.tensor_bytes);
  const auto names = ck.checkpoint.tensor_names();
  CHECK(std::is_sorted(names.begin(), names.end()));
  CHECK(ck.checkpoint.find("no.such.tensor") == nullptr);
  require_format_error([&] { ck.checkpoint.tensor("no.such.tensor"); }, {"no.such.tensor", dir});
}

TEST_CASE("sharded checkpoint: BF16 and F16 round trips, HF's names and index", "[hf]") {
  const DType dtype = GENERATE(DType::bf16, DType::f16, DType::f32);
  INFO("dtype " << dtype_name(dtype));
  TempDir tmp;
  const std::string dir = tmp.file("model");
  const LlamaConfig c = tiny_config();
  const auto tensors = random_llama_tensors(c, 5, 0.3f);
  const std::uint64_t max_shard = 3000;
  const HfWriteResult r = write_hf_checkpoint(dir, c, tensors, dtype, max_shard);
  const std::size_t n = r.weight_files.size();
  REQUIRE(n > 2);
  for (std::size_t i = 0; i < n; ++i) {
    CHECK(r.weight_files[i] == hf_shard_name(i, n));
    CHECK(std::filesystem::exists(dir + "/" + r.weight_files[i]));
  }
  CHECK(hf_shard_name(0, 3) == "model-00001-of-00003.safetensors");
  CHECK_FALSE(std::filesystem::exists(dir + "/model.safetensors"));
  CHECK_FALSE(std::filesystem::exists(dir + "/tokenizer.json"));
  const nlohmann::json index = read_json(dir + "/model.safetensors.index.json");
  CHECK(index["metadata"]["total_size"].get<std::uint64_t>() == r.tensor_bytes);
  CHECK(index["weight_map"].size() == tensors.size());

  const LlamaCheckpoint ck = open_llama_checkpoint(dir);
  CHECK(ck.checkpoint.sharded());
  CHECK(ck.checkpoint.shards().size() == n);
  CHECK_FALSE(ck.checkpoint.tokenizer_path());
  std::uint64_t shard_data = 0;
  for (const auto& shard : ck.checkpoint.shards()) {
    std::uint64_t bytes = 0;
    for (const auto& t : shard.tensors()) bytes += t.size_bytes;
    // A shard holds at most max_shard bytes, unless one tensor alone is larger.
    CHECK((bytes <= max_shard || shard.size() == 1));
    shard_data += bytes;
  }
  CHECK(shard_data == r.tensor_bytes);
  for (const auto& t : tensors) {
    const TensorView& v = ck.checkpoint.tensor(t.name);
    CHECK(index["weight_map"][t.name].get<std::string>().rfind("model-", 0) == 0);
    REQUIRE(v.dtype == dtype);
    const auto want = values_of(t);
    const auto got = v.to_vector<float>();
    REQUIRE(got.size() == want.size());
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      const float expected = dtype == DType::f32    ? want[i]
                             : dtype == DType::bf16 ? reference_bf16(want[i])
                                                    : f16_to_float(float_to_f16(want[i]));
      if (got[i] != expected) ++wrong;
      if (dtype == DType::f16)  // F16 keeps 11 significant bits
        CHECK(std::fabs(got[i] - want[i]) <= std::ldexp(std::fabs(want[i]), -11) + 1e-7f);
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("a StateDict writes as a checkpoint; rewriting switches layouts cleanly", "[hf]") {
  TempDir tmp;
  const std::string dir = tmp.file("model");
  const LlamaConfig c = tiny_config();
  StateDict dict;
  for (const auto& t : random_llama_tensors(c, 9)) {
    Tensor x;
    x.dtype = DType::f32;
    x.shape = t.shape;
    const auto v = values_of(t);
    x.bytes.resize(v.size() * 4);
    std::memcpy(x.bytes.data(), v.data(), x.bytes.size());
    dict.emplace(t.name, std::move(x));
  }
  write_hf_checkpoint(dir, c, dict, DType::f32, 2000);
  CHECK(open_llama_checkpoint(dir).checkpoint.sharded());
  // Rewritten as one file: the index and the shards go.
  write_hf_checkpoint(dir, c, dict, DType::f32, 0);
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    ++files;
    CHECK(e.path().filename().string().rfind("model-", 0) != 0);
  }
  CHECK(files == 2);  // config.json, model.safetensors
  const LlamaCheckpoint ck = open_llama_checkpoint(dir);
  CHECK_FALSE(ck.checkpoint.sharded());
  for (const auto& [name, t] : dict) CHECK(ck.checkpoint.tensor(name).to_tensor().bytes == t.bytes);
  // And sharded again: model.safetensors goes.
  write_hf_checkpoint(dir, c, dict, DType::bf16, 2000);
  CHECK_FALSE(std::filesystem::exists(dir + "/model.safetensors"));
  CHECK(open_llama_checkpoint(dir).checkpoint.sharded());
}

TEST_CASE("the writer refuses tensors that do not fit the configuration, writing nothing", "[hf]") {
  TempDir tmp;
  const std::string dir = tmp.file("model");
  const LlamaConfig c = tiny_config();
  auto tensors = random_llama_tensors(c, 1);
  SECTION("a wrong shape") {
    tensors[3].shape = {5, 5};
    CHECK_THROWS_WITH(write_hf_checkpoint(dir, c, tensors),
                      test::contains(tensors[3].name) && test::contains("[5, 5]"));
  }
  SECTION("a missing tensor") {
    const std::string name = tensors.back().name;
    tensors.pop_back();
    CHECK_THROWS_WITH(write_hf_checkpoint(dir, c, tensors),
                      test::contains(name) && test::contains("missing"));
  }
  SECTION("an extra tensor") {
    tensors.push_back(hf_tensor_view("model.extra.weight", {1}, nullptr));
    CHECK_THROWS_WITH(write_hf_checkpoint(dir, c, tensors), test::contains("model.extra.weight"));
  }
  SECTION("a dtype files do not use") {
    CHECK_THROWS_AS(write_hf_checkpoint(dir, c, tensors, DType::i8), InvalidArgument);
  }
  CHECK_FALSE(std::filesystem::exists(dir));
}

TEST_CASE("malformed checkpoint directories fail with the culprit named", "[hf]") {
  TempDir tmp;
  const std::string dir = tmp.file("model");
  write_sharded(dir);
  const nlohmann::json index = read_json(dir + "/model.safetensors.index.json");
  const std::string index_path = dir + "/model.safetensors.index.json";
  const std::string first_shard =
      index["weight_map"]["model.embed_tokens.weight"].get<std::string>();
  REQUIRE_NOTHROW(open_llama_checkpoint(dir));

  SECTION("a shard named in the index is missing") {
    std::filesystem::remove(dir + "/" + first_shard);
    require_format_error([&] { HfCheckpoint::open(dir); },
                         {first_shard, "missing", "model.embed_tokens.weight", dir});
  }
  SECTION("a truncated shard") {
    const std::string p = dir + "/" + first_shard;
    std::filesystem::resize_file(p, std::filesystem::file_size(p) - 10);
    require_format_error([&] { HfCheckpoint::open(dir); }, {first_shard});
  }
  SECTION("the index is not JSON") {
    write_text(index_path, "{\"weight_map\": {");
    require_format_error([&] { HfCheckpoint::open(dir); },
                         {"model.safetensors.index.json", "not valid JSON"});
  }
  SECTION("the index has no weight_map") {
    write_text(index_path, "{\"metadata\": {}}");
    require_format_error([&] { HfCheckpoint::open(dir); }, {"weight_map"});
  }
  SECTION("the index names a shard outside the directory") {
    nlohmann::json j = index;
    j["weight_map"]["model.norm.weight"] = "../elsewhere.safetensors";
    write_text(index_path, j.dump());
    require_format_error([&] { HfCheckpoint::open(dir); },
                         {"../elsewhere.safetensors", "model.norm.weight"});
  }
  SECTION("a tensor listed in the index is absent from its shard") {
    nlohmann::json j = index;
    j["weight_map"]["model.layers.9.mlp.up_proj.weight"] = first_shard;
    write_text(index_path, j.dump());
    require_format_error([&] { HfCheckpoint::open(dir); },
                         {"model.layers.9.mlp.up_proj.weight", first_shard, "absent"});
  }
  SECTION("a shard tensor the index does not list") {
    nlohmann::json j = index;
    j["weight_map"].erase("model.norm.weight");
    write_text(index_path, j.dump());
    require_format_error([&] { HfCheckpoint::open(dir); }, {"model.norm.weight", "not listed"});
  }
  SECTION("a tensor listed under another shard than the one holding it") {
    nlohmann::json j = index;
    j["weight_map"]["model.norm.weight"] = first_shard;
    write_text(index_path, j.dump());
    require_format_error([&] { HfCheckpoint::open(dir); },
                         {"model.norm.weight", "listed under shard"});
  }
  SECTION("a tensor present in two shards") {
    // An extra shard holding a copy of the norm, listed in the index.
    const HfCheckpoint ck = HfCheckpoint::open(dir);
    SafetensorsWriter w;
    w.add(ck.tensor("model.norm.weight"));
    w.write(dir + "/extra.safetensors");
    nlohmann::json j = index;
    j["weight_map"]["model.norm.weight"] = "extra.safetensors";
    write_text(index_path, j.dump());
    require_format_error([&] { HfCheckpoint::open(dir); },
                         {"model.norm.weight", "two shards", "extra.safetensors"});
  }
  SECTION("both layouts present") {
    write_text(dir + "/model.safetensors", "");
    require_format_error([&] { HfCheckpoint::open(dir); }, {"model.safetensors", "both"});
  }
  SECTION("no weights, no config, no directory") {
    std::filesystem::remove(index_path);
    require_format_error([&] { HfCheckpoint::open(dir); }, {"no weights", dir});
    std::filesystem::remove(dir + "/config.json");
    require_format_error([&] { HfCheckpoint::open(dir); }, {"config.json", dir});
    require_format_error([&] { HfCheckpoint::open(tmp.file("nothing")); }, {"not a directory"});
  }
  SECTION("a tensor whose shape disagrees with config.json") {
    nlohmann::json cfg = read_json(dir + "/config.json");
    cfg["intermediate_size"] = 20;
    write_text(dir + "/config.json", cfg.dump());
    require_format_error([&] { open_llama_checkpoint(dir); },
                         {"model.layers.0.mlp.gate_proj.weight", "[24, 16]", "[20, 16]"});
  }
  SECTION("config.json implies a tensor the checkpoint lacks") {
    nlohmann::json cfg = read_json(dir + "/config.json");
    cfg["num_hidden_layers"] = 3;
    write_text(dir + "/config.json", cfg.dump());
    require_format_error([&] { open_llama_checkpoint(dir); }, {"model.layers.2.", "missing"});
  }
  SECTION("a checkpoint tensor config.json does not use") {
    nlohmann::json cfg = read_json(dir + "/config.json");
    cfg["num_hidden_layers"] = 1;
    write_text(dir + "/config.json", cfg.dump());
    require_format_error([&] { open_llama_checkpoint(dir); },
                         {"model.layers.1.", "not part of the model"});
  }
  SECTION("a missing config key") {
    nlohmann::json cfg = read_json(dir + "/config.json");
    cfg.erase("hidden_size");
    write_text(dir + "/config.json", cfg.dump());
    require_format_error([&] { open_llama_checkpoint(dir); }, {"hidden_size", "config.json"});
  }
  SECTION("an unknown model_type") {
    nlohmann::json cfg = read_json(dir + "/config.json");
    cfg["model_type"] = "gpt2";
    write_text(dir + "/config.json", cfg.dump());
    require_format_error([&] { open_llama_checkpoint(dir); }, {"gpt2", "model_type"});
  }
}

TEST_CASE("tied embeddings: no lm_head, or a stored copy of the right shape", "[hf]") {
  TempDir tmp;
  const std::string dir = tmp.file("model");
  LlamaConfig c = tiny_config();
  c.tie_word_embeddings = true;
  c.attention_bias = true;
  write_hf_checkpoint(dir, c, random_llama_tensors(c, 2), DType::bf16, 0);
  const LlamaCheckpoint ck = open_llama_checkpoint(dir);
  CHECK(ck.config.tie_word_embeddings);
  CHECK_FALSE(ck.checkpoint.contains("lm_head.weight"));
  CHECK(ck.checkpoint.contains("model.layers.1.self_attn.k_proj.bias"));
}

TEST_CASE("a tokenizer of several MB fits in the metadata of a file", "[hf]") {
  // mbok-convert stores tokenizer.json verbatim in __metadata__ (header limit 100 MB).
  TempDir tmp;
  std::string tokenizer = "{\"model\": {\"vocab\": {";
  for (int i = 0; i < 200000; ++i)
    tokenizer += (i ? "," : "") + std::string("\"tok\xc3\xa9") + std::to_string(i) +
                 "\": " + std::to_string(i);
  tokenizer += "}}}";
  REQUIRE(tokenizer.size() > 3000000);
  SafetensorsWriter w;
  std::vector<float> x = {1, 2};
  w.add("x", DType::f32, {2}, x.data(), 8);
  w.set_metadata("tokenizer.json", tokenizer);
  w.write(tmp.file("big.safetensors"));
  const SafetensorsFile f = SafetensorsFile::open(tmp.file("big.safetensors"));
  CHECK(f.metadata().at("tokenizer.json") == tokenizer);
}
