// The dense float model against the independent double-precision reference
// (llama_support.hpp) on small random checkpoints: GQA, MHA, MQA, tied and untied heads, an
// explicit head_dim, llama3 and linear RoPE scaling, a sliding window, biases, and F32 / F16 /
// BF16 tensors.
//
// Bound: the model computes in float (24-bit mantissa) what the reference computes in double
// from the same tensor values. Over 2 blocks of hidden 32-48 the rounding of each product and
// sum stays below about 1e-6 relative, so max |logit - ref| / max |ref| < 1e-4 leaves a wide
// margin (observed: about 2e-7); perplexity over the sequence within 1e-4 relative.

#include <mbok/llama/model.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "catch.hpp"
#include "llama_support.hpp"

using mbok::DType;
using mbok::llama::KvCache;
using mbok::llama::LlamaConfig;
using mbok::llama::LlamaModel;
using mbok::llama::RopeScaling;

namespace {

void check_against_reference(const LlamaConfig& c, DType dtype, std::uint32_t seed,
                             std::size_t tokens_count = 12) {
  const auto ck = mbok::test::random_checkpoint(c, dtype, seed);
  const LlamaModel model = LlamaModel::from_tensors(c, ck.lookup());
  const auto tokens = mbok::test::random_tokens(tokens_count, c.vocab_size, seed + 1);
  KvCache cache = model.make_cache(32);
  const auto logits = model.forward(tokens, cache);
  REQUIRE(logits.rows() == static_cast<Eigen::Index>(tokens.size()));
  REQUIRE(logits.cols() == c.vocab_size);
  CHECK(cache.length() == static_cast<std::int64_t>(tokens.size()));

  const mbok::test::ReferenceLlama ref(c, ck.lookup());
  const auto expected = ref.logits(tokens);
  const double err = mbok::test::max_relative_error(logits, expected);
  INFO("max relative logit error " << err);
  CHECK(err < 1e-4);

  const auto vocab = static_cast<std::size_t>(c.vocab_size);
  const double ppl = mbok::test::perplexity(
      tokens.size(), vocab, tokens,
      [&](std::size_t i, std::size_t j) { return logits(Eigen::Index(i), Eigen::Index(j)); });
  const double ppl_ref = mbok::test::perplexity(
      tokens.size(), vocab, tokens, [&](std::size_t i, std::size_t j) { return expected[i][j]; });
  INFO("perplexity " << ppl << " reference " << ppl_ref);
  CHECK(std::abs(ppl - ppl_ref) / ppl_ref < 1e-4);
  CHECK(std::isfinite(ppl_ref));
  // The logits are not trivial (not constant over the vocabulary).
  CHECK(logits.row(0).maxCoeff() - logits.row(0).minCoeff() > 0.1f);
}

}  // namespace

TEST_CASE("llama: GQA, untied head, F32 matches the double reference", "[llama]") {
  check_against_reference(mbok::test::small_config(), DType::f32, 1);
}

TEST_CASE("llama: MHA, tied head, BF16 matches the double reference", "[llama]") {
  LlamaConfig c = mbok::test::small_config();
  c.num_key_value_heads = 4;
  c.tie_word_embeddings = true;
  check_against_reference(c, DType::bf16, 2);
}

TEST_CASE("llama: MQA, explicit head_dim, llama3 RoPE, biases, F16 match the double reference",
          "[llama]") {
  LlamaConfig c = mbok::test::small_config();
  c.num_key_value_heads = 1;
  c.head_dim = 12;  // != hidden 32 / 4 heads
  c.attention_bias = true;
  c.mlp_bias = true;
  c.rope_theta = 500000.0;
  c.rope_scaling.type = RopeScaling::Type::llama3;
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 64;
  // The three bands of llama3 scaling all occur at this head_dim.
  const mbok::test::ReferenceLlama ref(c, nullptr);
  const auto f = ref.inv_freq();
  const auto lib = c.rope_inverse_frequencies();
  REQUIRE(f.size() == lib.size());
  for (std::size_t i = 0; i < f.size(); ++i) CHECK(std::abs(f[i] - lib[i]) <= 1e-15 * f[i]);
  check_against_reference(c, DType::f16, 3, 20);
}

TEST_CASE("llama: linear RoPE scaling and a sliding window (mistral) match the double reference",
          "[llama]") {
  LlamaConfig c = mbok::test::small_config();
  c.model_type = "mistral";
  c.sliding_window = 4;
  c.rope_scaling.type = RopeScaling::Type::linear;
  c.rope_scaling.factor = 2.0;
  check_against_reference(c, DType::f32, 4, 14);
}

TEST_CASE("llama: hidden states and footprint of the dense model", "[llama]") {
  const LlamaConfig c = mbok::test::small_config();
  const auto ck = mbok::test::random_checkpoint(c, DType::f32, 5);
  const LlamaModel model = LlamaModel::from_tensors(c, ck.lookup());
  const auto tokens = mbok::test::random_tokens(6, c.vocab_size, 6);
  KvCache cache = model.make_cache(8);
  std::vector<mbok::llama::RowMatrix> hidden;
  const auto logits = model.forward(tokens, cache, &hidden);
  REQUIRE(hidden.size() == 3);
  for (const auto& hs : hidden) CHECK((hs.rows() == 6 && hs.cols() == c.hidden_size));
  // Embeddings first.
  for (std::size_t i = 0; i < tokens.size(); ++i)
    CHECK(hidden[0].row(Eigen::Index(i)) == model.embedding().row(tokens[i]));
  // The logits follow from the last hidden state: head(rms(x)).
  const auto& x = hidden.back();
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const double ms = x.row(i).cast<double>().squaredNorm() / double(c.hidden_size);
    const Eigen::VectorXf hn =
        (x.row(i).transpose().array() * float(1.0 / std::sqrt(ms + c.rms_norm_eps)) *
         model.final_norm().array())
            .matrix();
    const Eigen::VectorXf expect = model.head() * hn;
    CHECK((expect - logits.row(i).transpose()).cwiseAbs().maxCoeff() <
          1e-4f * expect.cwiseAbs().maxCoeff());
  }
  const auto f = model.footprint();
  CHECK(f.boolean_layers == 0);
  CHECK(f.dense_layers == 14);
  CHECK(f.dense_block_parameters == 2 * (32 * 32 + 2 * 16 * 32 + 32 * 32 + 3 * 48 * 32));
  CHECK(f.float_parameters == 2 * 50 * 32 + 5 * 32);
}
