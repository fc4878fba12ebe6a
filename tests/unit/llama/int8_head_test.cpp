// The int8 head (ModelOptions::head = HeadFormat::int8): the logits are those of the float
// model with the head replaced by its dequantized int8 copy, on the decode-sized product (a
// step of one token, forward_last) and on the panel path (a forward of many tokens), tied and
// untied; the footprint counts one byte per head weight; the float head is released.
//
// Bound: the reference multiplies the float model's final hidden state by the dequantized
// head in double; the model sums the same terms in float: |diff| <= 1e-5 max |logit| (the
// float rounding of a few hundred terms, observed about 1e-7).

#include <mbok/llama/model.hpp>

#include <vector>

#include "catch.hpp"
#include "llama_support.hpp"

using mbok::DType;
using mbok::llama::HeadFormat;
using mbok::llama::KvCache;
using mbok::llama::LlamaConfig;
using mbok::llama::LlamaModel;
using mbok::llama::RowMatrix;

namespace {

// Logits of the float model whose head is `head` (vocab x hidden): the final residual stream
// of `model`, RMS-normed with the final norm, times head^T, in double.
Eigen::MatrixXd logits_with_head(const LlamaModel& model, const std::vector<std::int32_t>& tokens,
                                 const Eigen::MatrixXd& head) {
  KvCache cache = model.make_cache(static_cast<std::int64_t>(tokens.size()));
  std::vector<RowMatrix> hidden;
  model.forward(tokens, cache, &hidden);
  const Eigen::MatrixXd x = hidden.back().cast<double>();
  const double eps = model.config().rms_norm_eps;
  Eigen::MatrixXd normed(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const double rms = std::sqrt(x.row(i).squaredNorm() / double(x.cols()) + eps);
    normed.row(i) =
        (x.row(i).array() / rms * model.final_norm().cast<double>().transpose().array()).matrix();
  }
  return normed * head.transpose();
}

void check_int8_head(const LlamaConfig& c, std::uint32_t seed) {
  const auto ck = mbok::test::random_checkpoint(c, DType::f32, seed);
  const LlamaModel float_model = LlamaModel::from_tensors(c, ck.lookup());
  mbok::llama::ModelOptions options;
  options.head = HeadFormat::int8;
  const LlamaModel model = LlamaModel::from_tensors(c, ck.lookup(), options);
  const mbok::Int8Matrix* w = model.int8_head();
  REQUIRE(w != nullptr);
  REQUIRE(w->rows() == std::size_t(c.vocab_size));
  RowMatrix dequantized(c.vocab_size, c.hidden_size);
  w->dequantize_rows(0, w->rows(), dequantized.data(), w->cols());
  // The head the model was built from, within half a quantization step per weight.
  const RowMatrix& original = float_model.head();
  for (Eigen::Index j = 0; j < original.rows(); ++j)
    CHECK((dequantized.row(j) - original.row(j)).cwiseAbs().maxCoeff() <=
          0.5f * w->scales()[j] * 1.0001f);

  // 20 tokens: the panel path (> 8 rows); then one decode step: the int8 product.
  const auto tokens = mbok::test::random_tokens(20, c.vocab_size, seed + 1);
  const Eigen::MatrixXd expect = logits_with_head(model, tokens, dequantized.cast<double>());
  KvCache cache = model.make_cache(21);
  const RowMatrix all = model.forward(tokens, cache);
  const double scale = expect.cwiseAbs().maxCoeff();
  CHECK((all.cast<double>() - expect).cwiseAbs().maxCoeff() <= 1e-5 * scale);
  KvCache step_cache = model.make_cache(21);
  const std::vector<std::int32_t> prefix(tokens.begin(), tokens.end() - 1);
  model.forward(prefix, step_cache);
  const Eigen::VectorXf last = model.forward_last({tokens.back()}, step_cache);
  CHECK((last.cast<double>().transpose() - expect.row(expect.rows() - 1)).cwiseAbs().maxCoeff() <=
        1e-5 * scale);

  // Footprint: one byte per head weight plus a scale per row, in place of four bytes.
  const auto f = model.footprint(), g = float_model.footprint();
  const std::size_t v = std::size_t(c.vocab_size), h = std::size_t(c.hidden_size);
  CHECK(g.bytes_per_token - f.bytes_per_token == v * h * 4 - (v * h + v * 4));
  if (c.tie_word_embeddings) {
    CHECK(f.resident_bytes == g.resident_bytes + v * h + v * 4);
    CHECK(model.head().rows() == c.vocab_size);  // the embedding stays
  } else {
    CHECK(g.resident_bytes - f.resident_bytes == v * h * 4 - (v * h + v * 4));
    CHECK_THROWS_WITH(model.head(), mbok::test::contains("float head was released"));
  }
}

}  // namespace

TEST_CASE("llama: an int8 head gives the logits of its dequantized copy (untied)", "[llama]") {
  check_int8_head(mbok::test::small_config(), 31);
}

TEST_CASE("llama: an int8 head gives the logits of its dequantized copy (tied)", "[llama]") {
  LlamaConfig c = mbok::test::small_config();
  c.tie_word_embeddings = true;
  check_int8_head(c, 33);
}
