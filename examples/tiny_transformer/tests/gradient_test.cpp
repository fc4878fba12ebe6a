// The model's analytic gradients against central finite differences, in double precision
// on a tiny configuration, through cross-entropy, KL and the hidden-state MSE.

#include <cmath>
#include <random>

#include <mbok/losses.hpp>

#include "catch.hpp"
#include "model.hpp"

namespace {

using tiny::Batch;
using tiny::Index;
using tiny::Mat;

tiny::ModelConfig tiny_config() {
  tiny::ModelConfig c;
  c.d_model = 8;
  c.layers = 2;
  c.heads = 2;
  c.mlp_mult = 2;
  c.context = 6;
  return c;
}

Batch random_batch(Index rows, Index len, std::mt19937_64& rng) {
  Batch b;
  b.rows = rows;
  b.len = len;
  std::uniform_int_distribution<int> tok(0, 255);
  for (Index i = 0; i < rows * len; ++i) {
    b.inputs.push_back(std::uint8_t(tok(rng)));
    b.targets.push_back(std::uint8_t(tok(rng)));
  }
  return b;
}

// Loss = CE (or KL to fixed teacher logits) + sum_l MSE(hidden_l, target_l).
struct Objective {
  tiny::Transformer<double>& model;
  const Batch& batch;
  const Mat<double>* teacher_logits;
  std::vector<Mat<double>> hidden_targets;
  double gamma = 3.0;

  double loss(bool with_grad) {
    Mat<double> logits, dlogits;
    model.forward(batch, logits, with_grad);
    double l =
        teacher_logits
            ? mbok::kl_divergence(*teacher_logits, logits, 1.0, with_grad ? &dlogits : nullptr)
            : mbok::cross_entropy(logits, batch.targets, with_grad ? &dlogits : nullptr);
    std::vector<Mat<double>> dh(model.num_blocks());
    for (std::size_t i = 0; i < model.num_blocks(); ++i) {
      l += gamma * mbok::mse(hidden_targets[i], model.hidden(i), with_grad ? &dh[i] : nullptr);
      dh[i] *= gamma;
    }
    if (with_grad) {
      model.zero_grad();
      model.backward(dlogits, &dh);
    }
    return l;
  }
};

void check_gradients(bool distill) {
  std::mt19937_64 rng(7);
  tiny::Transformer<double> model(tiny_config(), 3);
  // Larger weights than the default init, so every path carries signal.
  for (auto& p : model.parameters())
    for (std::size_t i = 0; i < p.size; ++i)
      p.value[i] += std::normal_distribution<double>(0, 0.3)(rng);
  const Batch batch = random_batch(2, 5, rng);
  Mat<double> teacher = Mat<double>::Random(10, 256) * 2.0;
  Objective obj{model, batch, distill ? &teacher : nullptr, {}, 3.0};
  for (std::size_t l = 0; l < model.num_blocks(); ++l)
    obj.hidden_targets.push_back(Mat<double>::Random(10, 8));

  obj.loss(true);
  auto params = model.parameters();
  std::vector<std::vector<double>> analytic;
  for (auto& p : params) analytic.emplace_back(p.grad, p.grad + p.size);
  int checked = 0;
  for (std::size_t pi = 0; pi < params.size(); ++pi) {
    auto& p = params[pi];
    std::uniform_int_distribution<std::size_t> pick(0, p.size - 1);
    for (int s = 0; s < 6; ++s) {
      const std::size_t i = pick(rng);
      const double saved = p.value[i], h = 1e-5;
      p.value[i] = saved + h;
      const double up = obj.loss(false);
      p.value[i] = saved - h;
      const double down = obj.loss(false);
      p.value[i] = saved;
      const double numeric = (up - down) / (2 * h);
      const double a = analytic[pi][i];
      INFO(p.name << "[" << i << "] analytic " << a << " numeric " << numeric);
      REQUIRE(std::abs(a - numeric) <= 1e-6 + 1e-5 * std::abs(numeric));
      ++checked;
    }
  }
  // Every parameter tensor of the model was probed.
  REQUIRE(checked == int(params.size()) * 6);
  REQUIRE(params.size() == 2 + 2 * (2 + 6) + 2);
}

}  // namespace

TEST_CASE("transformer gradients match finite differences (cross-entropy + MSE)", "[gradient]") {
  check_gradients(false);
}

TEST_CASE("transformer gradients match finite differences (KL + MSE)", "[gradient]") {
  check_gradients(true);
}

TEST_CASE("incremental decoding matches the full forward pass", "[decode]") {
  std::mt19937_64 rng(11);
  tiny::Transformer<double> model(tiny_config(), 5);
  for (auto& p : model.parameters())
    for (std::size_t i = 0; i < p.size; ++i)
      p.value[i] += std::normal_distribution<double>(0, 0.3)(rng);
  const Batch batch = random_batch(1, 6, rng);
  Mat<double> logits;
  model.forward(batch, logits, false);
  auto state = model.start_decoding();
  tiny::Vec<double> step_logits;
  for (Index i = 0; i < 6; ++i) {
    model.decode_step(state, batch.inputs[std::size_t(i)], step_logits);
    REQUIRE((step_logits.transpose() - logits.row(i)).cwiseAbs().maxCoeff() < 1e-10);
  }
}
