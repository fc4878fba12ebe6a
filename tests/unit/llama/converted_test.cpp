// The converted model: an mbok file (built in memory with MbokWriter) whose block projections
// are K = 2 Boolean layers from SVID. Its float path equals the dense model whose weights are
// the reconstructed kernels, and its int8 path agrees with the float path within the effect
// of int8 quantization.
//
// Bounds:
// - float path against the reconstructed dense model: the same weights, products summed in
//   another order (sign products against an Eigen GEMM): max |diff| / max |logit| < 1e-4
//   (observed: about 1e-6).
// - int8 against float: each kernel's input v = x (.) s_in is rounded to a step of
//   max|v| / 127, an error uniform in +-step / 2, so an output of n inputs moves by about
//   sqrt(n / 12) * step, i.e. a relative error of about (max|v| / rms(v)) / (127 sqrt(12)),
//   0.5-1 % per projection for these Gaussian-like inputs (max / rms of 2-3). The 14
//   projections of 2 blocks add such errors to the residual stream mostly independently, so
//   the logits move by about 1 %: ||int8 - float||_F / ||float||_F < 3 % (observed:
//   0.73-0.78 % on every ISA), and not by zero (the int8 path ran).

#include <mbok/io/mbok_format.hpp>
#include <mbok/llama/model.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "llama_support.hpp"

using mbok::DType;
using mbok::llama::Activations;
using mbok::llama::KvCache;
using mbok::llama::LlamaConfig;
using mbok::llama::LlamaModel;
using mbok::llama::RowMatrix;

namespace {

RowMatrix as_matrix(const mbok::Tensor& t) {
  return Eigen::Map<const RowMatrix>(reinterpret_cast<const float*>(t.bytes.data()), t.shape[0],
                                     t.shape[1]);
}

mbok::Tensor f32_tensor(const RowMatrix& m) {
  std::vector<float> v(m.data(), m.data() + m.size());
  return mbok::test::make_tensor(DType::f32, {m.rows(), m.cols()}, v);
}

// An mbok file of `c` from F32 tensors: every block projection but those in `dense` converted
// to K = 2 (SVID); attention biases recorded with their layers, MLP biases kept as tensors.
// Also returns the tensors of the reconstructed dense model. The file's bytes sit 64-byte
// aligned, so its kernels are borrowed.
struct Converted {
  std::shared_ptr<std::uint8_t> bytes;
  std::size_t size = 0;
  std::optional<mbok::MbokModel> file;
  std::map<std::string, mbok::Tensor> reconstructed;
};

Converted convert(const LlamaConfig& c, const std::map<std::string, mbok::Tensor>& tensors,
                  const std::vector<std::string>& dense, bool with_config = true) {
  Converted out;
  std::vector<std::unique_ptr<mbok::MultiKernelWeights<float>>> kept;
  mbok::MbokWriter writer;
  for (const auto& [name, t] : tensors) {
    const bool block_weight = name.find("_proj.weight") != std::string::npos;
    const bool is_dense = std::find(dense.begin(), dense.end(), name) != dense.end();
    if (!block_weight || is_dense) {
      writer.add_tensor(name, t);
      out.reconstructed[name] = t;
      continue;
    }
    const std::string layer = name.substr(0, name.size() - 7);
    kept.push_back(std::make_unique<mbok::MultiKernelWeights<float>>(
        mbok::BooleanLinear<float>::from_dense(as_matrix(t), 2).weights()));
    mbok::MbokLayerOptions options;
    options.source = name;
    if (c.attention_bias && name.find("self_attn") != std::string::npos)
      options.bias = layer + ".bias";
    writer.add_layer(layer, *kept.back(), options);
    const RowMatrix w = kept.back()->reconstruct();
    out.reconstructed[name] = f32_tensor(w);
  }
  if (with_config) writer.set_metadata("config.json", c.to_json().dump());
  const std::vector<std::uint8_t> bytes = writer.to_bytes();
  out.size = bytes.size();
  out.bytes.reset(static_cast<std::uint8_t*>(std::aligned_alloc(64, (bytes.size() + 63) / 64 * 64)),
                  std::free);
  std::memcpy(out.bytes.get(), bytes.data(), bytes.size());
  out.file.emplace(mbok::MbokModel::from_memory(out.bytes.get(), out.size, out.bytes));
  return out;
}

double frobenius_rel(const RowMatrix& a, const RowMatrix& b) {
  return double((a - b).norm()) / double(b.norm());
}

void check_converted(const LlamaConfig& c, std::uint32_t seed,
                     const std::vector<std::string>& dense) {
  const auto tensors = mbok::test::random_tensors(c, DType::f32, seed);
  const Converted conv = convert(c, tensors, dense);
  const auto teacher = mbok::test::checkpoint_from(c, conv.reconstructed);
  const LlamaModel reconstructed = LlamaModel::from_tensors(c, teacher.lookup());
  const LlamaModel as_float = LlamaModel::from_mbok(*conv.file, {Activations::float32});
  const LlamaModel as_int8 = LlamaModel::from_mbok(*conv.file, {Activations::int8});
  CHECK(as_float.config().to_json() == c.to_json());

  const std::size_t projections = 7 * std::size_t(c.num_hidden_layers);
  const auto fp = as_float.footprint();
  CHECK(fp.boolean_layers == projections - dense.size());
  CHECK(fp.dense_layers == dense.size());
  // A K = 2 projection reads its bits (rows padded to 512 bits) and scales: for q_proj
  // (q_size x hidden) 2 * (rows * 64 bytes + (rows + 32) * 4).
  const auto& q = as_float.blocks()[0].q_proj;
  const std::size_t rows = std::size_t(c.q_size());
  CHECK(q.weight_bytes() == 2 * (rows * 64 + (rows + 32) * 4) + (c.attention_bias ? rows * 4 : 0));
  CHECK(fp.boolean_parameters + fp.dense_block_parameters ==
        reconstructed.footprint().dense_block_parameters);
  // The int8 decoder holds one copy: its Boolean layers packed, and untied embeddings read
  // from the file row by row (a tied table is the float head and stays floats).
  CHECK(as_int8.embedding_table().is_borrowed() == !c.tie_word_embeddings);
  for (const auto& b : as_int8.blocks())
    for (const auto* l : b.linears()) CHECK((l->packed_layer() != nullptr) == l->is_boolean());
  for (const auto& b : as_float.blocks())
    for (const auto* l : b.linears())
      if (l->is_boolean()) {
        CHECK(l->boolean_layer()->kernel(0).is_borrowed());
        CHECK(l->boolean_layer()->has_bias() ==
              (l->name().find("self_attn") != std::string::npos ? c.attention_bias : c.mlp_bias));
      }

  const auto tokens = mbok::test::random_tokens(16, c.vocab_size, seed + 1);
  KvCache c1 = reconstructed.make_cache(16), c2 = as_float.make_cache(16),
          c3 = as_int8.make_cache(16);
  const RowMatrix expect = reconstructed.forward(tokens, c1);
  const RowMatrix got = as_float.forward(tokens, c2);
  const RowMatrix got8 = as_int8.forward(tokens, c3);
  const double float_err =
      double((got - expect).cwiseAbs().maxCoeff()) / double(expect.cwiseAbs().maxCoeff());
  const double int8_err = frobenius_rel(got8, got);
  INFO("float path vs reconstructed: " << float_err << ", int8 vs float: " << int8_err);
  CHECK(float_err < 1e-4);
  CHECK(int8_err < 0.03);
  CHECK(int8_err > 0.0);
  // The reference agrees with the reconstructed teacher too (the file's model is that one).
  const mbok::test::ReferenceLlama ref(c, teacher.lookup());
  CHECK(mbok::test::max_relative_error(got, ref.logits(tokens)) < 1e-4);
}

}  // namespace

TEST_CASE("llama: converted model, float path equals the reconstructed dense model; int8 close",
          "[llama]") {
  check_converted(mbok::test::small_config(), 21, {});
}

TEST_CASE("llama: converted model with biases, tied head and one projection kept dense",
          "[llama]") {
  LlamaConfig c = mbok::test::small_config();
  c.attention_bias = true;
  c.mlp_bias = true;
  c.tie_word_embeddings = true;
  c.head_dim = 12;
  check_converted(c, 22, {"model.layers.1.mlp.down_proj.weight"});
}

TEST_CASE("llama: converted model errors name the missing config, layer or shape", "[llama]") {
  const LlamaConfig c = mbok::test::small_config();
  auto tensors = mbok::test::random_tensors(c, DType::f32, 23);
  {
    const Converted conv = convert(c, tensors, {}, false);
    CHECK_THROWS_WITH(LlamaModel::from_mbok(*conv.file), mbok::test::contains("config.json"));
  }
  {
    // A projection neither converted nor kept.
    auto partial = tensors;
    partial.erase("model.layers.1.mlp.up_proj.weight");
    const Converted conv = convert(c, partial, {});
    CHECK_THROWS_AS(LlamaModel::from_mbok(*conv.file), mbok::FormatError);
    CHECK_THROWS_WITH(LlamaModel::from_mbok(*conv.file),
                      mbok::test::contains("model.layers.1.mlp.up_proj"));
  }
  {
    // A layer whose shape disagrees with the config: the file says intermediate 48, the
    // config 40.
    LlamaConfig other = c;
    other.intermediate_size = 40;
    std::vector<std::unique_ptr<mbok::MultiKernelWeights<float>>> kept;
    mbok::MbokWriter w2;
    for (const auto& [name, t] : tensors) {
      if (name.find("_proj.weight") == std::string::npos) {
        w2.add_tensor(name, t);
        continue;
      }
      kept.push_back(std::make_unique<mbok::MultiKernelWeights<float>>(
          mbok::BooleanLinear<float>::from_dense(as_matrix(t), 1).weights()));
      w2.add_layer(name.substr(0, name.size() - 7), *kept.back());
    }
    w2.set_metadata("config.json", other.to_json().dump());
    const auto bytes = std::make_shared<std::vector<std::uint8_t>>(w2.to_bytes());
    const mbok::MbokModel file = mbok::MbokModel::from_memory(bytes->data(), bytes->size(), bytes);
    CHECK_THROWS_AS(LlamaModel::from_mbok(file), mbok::FormatError);
    CHECK_THROWS_WITH(LlamaModel::from_mbok(file),
                      mbok::test::contains("model.layers.0.mlp.gate_proj") &&
                          mbok::test::contains("[48, 32]") && mbok::test::contains("[40, 32]"));
  }
}
