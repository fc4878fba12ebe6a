// The KV cache: generating token by token, or in chunks of uneven size, gives the logits of a
// full recompute of the sequence.
//
// Bound: the same float operations run in another order (one-token GEMVs against batched
// GEMMs, attention over the cached rows), so the logits agree to float rounding: max |diff| /
// max |logit| < 1e-5 (observed: about 1e-7). On the int8 path each token is quantized on
// its own in either case, so the same bound holds.

#include <mbok/io/mbok_format.hpp>
#include <mbok/llama/model.hpp>

#include <vector>

#include "catch.hpp"
#include "llama_support.hpp"

using mbok::DType;
using mbok::llama::Activations;
using mbok::llama::KvCache;
using mbok::llama::LlamaConfig;
using mbok::llama::LlamaModel;

namespace {

double max_rel(const mbok::llama::RowMatrix& a, const mbok::llama::RowMatrix& b) {
  return double((a - b).cwiseAbs().maxCoeff()) / double(b.cwiseAbs().maxCoeff());
}

// Logits of `tokens` fed in chunks of the given sizes to one cache, stacked.
mbok::llama::RowMatrix chunked(const LlamaModel& model, const std::vector<std::int32_t>& tokens,
                               const std::vector<std::size_t>& sizes) {
  KvCache cache = model.make_cache(static_cast<std::int64_t>(tokens.size()));
  mbok::llama::RowMatrix out(static_cast<Eigen::Index>(tokens.size()), model.config().vocab_size);
  std::size_t at = 0;
  for (std::size_t n : sizes) {
    const std::vector<std::int32_t> part(tokens.begin() + long(at), tokens.begin() + long(at + n));
    out.middleRows(Eigen::Index(at), Eigen::Index(n)) = model.forward(part, cache);
    at += n;
    CHECK(cache.length() == static_cast<std::int64_t>(at));
  }
  REQUIRE(at == tokens.size());
  return out;
}

void check_cache(const LlamaModel& model, std::uint32_t seed) {
  const auto tokens = mbok::test::random_tokens(12, model.config().vocab_size, seed);
  KvCache full_cache = model.make_cache(12);
  const auto full = model.forward(tokens, full_cache);
  const auto one_by_one = chunked(model, tokens, std::vector<std::size_t>(12, 1));
  CHECK(max_rel(one_by_one, full) < 1e-5);
  const auto uneven = chunked(model, tokens, {5, 1, 1, 3, 2});
  CHECK(max_rel(uneven, full) < 1e-5);

  // forward_last: the last row of the same call.
  KvCache cache = model.make_cache(12);
  const std::vector<std::int32_t> prefix(tokens.begin(), tokens.begin() + 7);
  const Eigen::VectorXf last = model.forward_last(prefix, cache);
  CHECK((last.transpose() - full.row(6)).cwiseAbs().maxCoeff() <=
        1e-5f * full.row(6).cwiseAbs().maxCoeff());
  // Decode into a caller buffer.
  Eigen::VectorXf buffer(model.config().vocab_size);
  for (std::size_t i = 7; i < 12; ++i) {
    model.forward_last(&tokens[i], 1, cache, buffer.data());
    const auto row = full.row(Eigen::Index(i));
    CHECK((buffer.transpose() - row).cwiseAbs().maxCoeff() <= 1e-5f * row.cwiseAbs().maxCoeff());
  }
  // clear() and truncate() rewind.
  cache.truncate(7);
  model.forward_last(&tokens[7], 1, cache, buffer.data());
  CHECK((buffer.transpose() - full.row(7)).cwiseAbs().maxCoeff() <=
        1e-5f * full.row(7).cwiseAbs().maxCoeff());
  cache.clear();
  CHECK(cache.length() == 0);
  const auto again = model.forward(tokens, cache);
  CHECK(max_rel(again, full) < 1e-5);
}

}  // namespace

TEST_CASE("llama: KV cache decode and uneven chunks equal a full recompute (dense, GQA)",
          "[llama]") {
  const LlamaConfig c = mbok::test::small_config();
  const auto ck = mbok::test::random_checkpoint(c, DType::f32, 11);
  check_cache(LlamaModel::from_tensors(c, ck.lookup()), 12);
}

TEST_CASE("llama: KV cache with a sliding window and biases equals a full recompute", "[llama]") {
  LlamaConfig c = mbok::test::small_config();
  c.model_type = "mistral";
  c.sliding_window = 3;
  c.attention_bias = true;
  c.num_key_value_heads = 1;
  const auto ck = mbok::test::random_checkpoint(c, DType::bf16, 13);
  check_cache(LlamaModel::from_tensors(c, ck.lookup()), 14);
}

TEST_CASE("llama: KV cache on Boolean layers, int8 and float paths, equals a full recompute",
          "[llama]") {
  const LlamaConfig c = mbok::test::small_config();
  const auto tensors = mbok::test::random_tensors(c, DType::f32, 15);
  // Every block projection as a K = 2 Boolean layer.
  std::vector<std::unique_ptr<mbok::MultiKernelWeights<float>>> kept;
  mbok::MbokWriter writer;
  for (const auto& [name, t] : tensors) {
    if (name.find("_proj.weight") == std::string::npos) {
      writer.add_tensor(name, t);
      continue;
    }
    const auto ck_view = mbok::llama::RowMatrix(Eigen::Map<const mbok::llama::RowMatrix>(
        reinterpret_cast<const float*>(t.bytes.data()), t.shape[0], t.shape[1]));
    kept.push_back(std::make_unique<mbok::MultiKernelWeights<float>>(
        mbok::BooleanLinear<float>::from_dense(ck_view, 2).weights()));
    writer.add_layer(name.substr(0, name.size() - 7), *kept.back());
  }
  writer.set_metadata("config.json", c.to_json().dump());
  const auto bytes = std::make_shared<std::vector<std::uint8_t>>(writer.to_bytes());
  const mbok::MbokModel file = mbok::MbokModel::from_memory(bytes->data(), bytes->size(), bytes);
  for (Activations a : {Activations::float32, Activations::int8}) {
    const LlamaModel model = LlamaModel::from_mbok(file, {a});
    CHECK(model.footprint().boolean_layers == 14);
    check_cache(model, 16);
  }
}
