// Malformed inputs: a missing tensor, a tensor whose shape or dtype disagrees with the config,
// a token id out of range, a context overflow, a cache of another model: each an exception
// whose message names it, and the cache unchanged after a refused call.

#include <mbok/llama/model.hpp>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "catch.hpp"
#include "llama_support.hpp"

using mbok::DType;
using mbok::llama::KvCache;
using mbok::llama::LlamaConfig;
using mbok::llama::LlamaModel;

TEST_CASE("llama: a missing tensor is named", "[llama]") {
  const LlamaConfig c = mbok::test::small_config();
  const auto ck = mbok::test::random_checkpoint(c, DType::f32, 31);
  for (const std::string missing :
       {"model.layers.1.self_attn.k_proj.weight", "lm_head.weight", "model.norm.weight",
        "model.layers.0.post_attention_layernorm.weight"}) {
    auto lookup = [&](const std::string& n) { return n == missing ? nullptr : ck.find(n); };
    CHECK_THROWS_AS(LlamaModel::from_tensors(c, lookup), mbok::FormatError);
    CHECK_THROWS_WITH(LlamaModel::from_tensors(c, lookup),
                      mbok::test::contains("missing tensor '" + missing + "'"));
  }
  // A configured bias that is absent.
  LlamaConfig biased = c;
  biased.mlp_bias = true;
  CHECK_THROWS_WITH(LlamaModel::from_tensors(biased, ck.lookup()),
                    mbok::test::contains("missing tensor 'model.layers.0.mlp.gate_proj.bias'"));
}

TEST_CASE(
    "llama: a tensor whose shape or dtype disagrees with the config is named with both shapes",
    "[llama]") {
  const LlamaConfig c = mbok::test::small_config();
  const auto ck = mbok::test::random_checkpoint(c, DType::f32, 32);
  LlamaConfig other = c;
  other.intermediate_size = 40;
  CHECK_THROWS_AS(LlamaModel::from_tensors(other, ck.lookup()), mbok::FormatError);
  CHECK_THROWS_WITH(
      LlamaModel::from_tensors(other, ck.lookup()),
      mbok::test::contains("'model.layers.0.mlp.gate_proj.weight' has shape [48, 32]") &&
          mbok::test::contains("[40, 32]"));
  LlamaConfig vocab = c;
  vocab.vocab_size = 64;
  CHECK_THROWS_WITH(
      LlamaModel::from_tensors(vocab, ck.lookup()),
      mbok::test::contains("model.embed_tokens.weight") && mbok::test::contains("[64, 32]"));
  // An integer tensor where a float one belongs.
  auto tensors = mbok::test::random_tensors(c, DType::f32, 33);
  mbok::Tensor& norm = tensors["model.norm.weight"];
  norm.dtype = DType::i32;
  const auto bad = mbok::test::checkpoint_from(c, tensors);
  CHECK_THROWS_WITH(LlamaModel::from_tensors(c, bad.lookup()),
                    mbok::test::contains("'model.norm.weight' has dtype I32"));
  // Non-finite values.
  auto nan_tensors = mbok::test::random_tensors(c, DType::f32, 34);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(nan_tensors["model.layers.0.self_attn.v_proj.weight"].bytes.data(), &nan, 4);
  const auto nan_ck = mbok::test::checkpoint_from(c, nan_tensors);
  CHECK_THROWS_WITH(LlamaModel::from_tensors(c, nan_ck.lookup()),
                    mbok::test::contains("'model.layers.0.self_attn.v_proj.weight' is not finite"));
}

TEST_CASE("llama: token ids out of range, context overflow and a foreign cache are refused",
          "[llama]") {
  const LlamaConfig c = mbok::test::small_config();
  const auto ck = mbok::test::random_checkpoint(c, DType::f32, 35);
  const LlamaModel model = LlamaModel::from_tensors(c, ck.lookup());
  KvCache cache = model.make_cache(8);
  CHECK_THROWS_AS(model.forward({1, 2, 50}, cache), mbok::InvalidArgument);
  CHECK_THROWS_WITH(
      model.forward({1, 2, 50}, cache),
      mbok::test::contains("token id 50 at index 2") && mbok::test::contains("vocab_size = 50"));
  CHECK_THROWS_WITH(model.forward({-1}, cache), mbok::test::contains("token id -1"));
  CHECK(cache.length() == 0);

  const auto before = model.forward({1, 2, 3, 4, 5}, cache);
  CHECK_THROWS_AS(model.forward({6, 7, 8, 9}, cache), mbok::InvalidArgument);
  CHECK_THROWS_WITH(model.forward({6, 7, 8, 9}, cache), mbok::test::contains("context overflow") &&
                                                            mbok::test::contains("max_tokens = 8"));
  CHECK(cache.length() == 5);
  // The cache still works after the refusal, up to its size.
  const auto rest = model.forward({6, 7, 8}, cache);
  CHECK(cache.length() == 8);
  KvCache fresh = model.make_cache(8);
  const auto all = model.forward({1, 2, 3, 4, 5, 6, 7, 8}, fresh);
  CHECK((all.bottomRows(3) - rest).cwiseAbs().maxCoeff() <= 1e-5f * all.cwiseAbs().maxCoeff());
  CHECK_THROWS_WITH(model.forward_last({9}, cache), mbok::test::contains("context overflow"));
  CHECK_THROWS_WITH(model.forward_last(std::vector<std::int32_t>{}, cache),
                    mbok::test::contains("no tokens"));

  LlamaConfig other = c;
  other.num_key_value_heads = 4;
  KvCache foreign(other, 8);
  CHECK_THROWS_WITH(model.forward({1}, foreign),
                    mbok::test::contains("was not made for this model"));
  CHECK_THROWS_AS(model.make_cache(0), mbok::InvalidArgument);
  CHECK_THROWS_WITH(cache.truncate(9), mbok::test::contains("cannot truncate"));
}
