// The latent baseline's projection in the library's trainable LLaMA: its analytic gradients
// (input, scales, latents) against central finite differences in double precision, alone and
// inside a whole TrainableLlama<double> through the distillation-style loss, and its first
// forward equal to the Boolean projection's from the same SVID.

#include <mbok/llama/train/train.hpp>

#include <cmath>
#include <random>

#include "catch.hpp"
#include "common.hpp"
#include "latent_projection.hpp"

namespace {

using tiny::Index;
using tiny::LatentProjection;
using Md = tiny::Mat<double>;

Md random_matrix(Index rows, Index cols, std::mt19937_64& rng) {
  std::normal_distribution<double> n(0.0, 1.0);
  Md m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
  return m;
}

// L = sum(y (.) r) for a fixed random r: dL/dy = r.
double loss(LatentProjection<double>& p, const Md& x, const Md& r) {
  Md y;
  p.forward(x, y, false);
  return (y.array() * r.array()).sum();
}

}  // namespace

TEST_CASE("latent projection: gradients of input, scales and latents match finite differences",
          "[gradient]") {
  std::mt19937_64 rng(7);
  const Index out = 5, in = 7, rows = 3;
  const Md w = random_matrix(out, in, rng);
  LatentProjection<double> p(w, 2, {false, true});
  const Md x = random_matrix(rows, in, rng), r = random_matrix(rows, out, rng);
  Md y, dx;
  p.zero_grad();
  p.forward(x, y, true);
  p.backward(r, dx);
  const double h = 1e-6;
  // Input.
  for (Index i = 0; i < x.size(); ++i) {
    Md xp = x, xm = x;
    xp.data()[i] += h;
    xm.data()[i] -= h;
    CHECK(dx.data()[i] == Approx((loss(p, xp, r) - loss(p, xm, r)) / (2 * h)).margin(1e-6));
  }
  // Scales (the sign pattern does not move under a small change of a scale).
  std::vector<mbok::BasicParameter<double>> params;
  p.parameters(params, "");
  REQUIRE(params.size() == 4);
  for (auto& q : params)
    for (std::size_t i = 0; i < q.size; ++i) {
      const double saved = q.value[i];
      q.value[i] = saved + h;
      const double lp = loss(p, x, r);
      q.value[i] = saved - h;
      const double lm = loss(p, x, r);
      q.value[i] = saved;
      INFO(q.name << "[" << i << "]");
      CHECK(q.grad[i] == Approx((lp - lm) / (2 * h)).margin(1e-6));
    }
  // Latents: the straight-through gradient is dL/dW (.) s_out s_in^T, the gradient of the
  // layer with sign() replaced by the identity on the trainable kernel.
  std::vector<mbok::BasicParameter<double>> latents;
  p.latent_parameters(latents, "");
  REQUIRE(latents.size() == 1);  // kernel 1 only
  const Md g = r.transpose() * x;
  mbok::MultiKernelWeights<double> svid = mbok::svid<double>(w, 2).weights;
  const Md expected = g.array() * (svid.s_out(1) * svid.s_in(1).transpose()).array();
  for (std::size_t i = 0; i < latents[0].size; ++i)
    CHECK(latents[0].grad[i] == Approx(expected.data()[i]).margin(1e-9));
}

TEST_CASE("latent projection: starts as the Boolean projection and trains inside TrainableLlama",
          "[gradient]") {
  std::mt19937_64 rng(3);
  const Md w = random_matrix(6, 8, rng), x = random_matrix(4, 8, rng);
  LatentProjection<double> latent(w, 2, {false, true});
  mbok::llama::train::BooleanProjection<double> boolean(
      mbok::BooleanLinear<double>::from_dense(w, 2));
  Md a, b;
  latent.forward(x, a, false);
  boolean.forward(x, b, false);
  CHECK((a - b).norm() <= 1e-9 * b.norm());
  CHECK(latent.dense_weight().isApprox(boolean.dense_weight(), 1e-12));
  CHECK(latent.trainable_signs().size() == 1);

  // Export and import restore the latents and scales exactly.
  mbok::StateDict dict;
  latent.export_state(dict, "p.");
  LatentProjection<double> other(random_matrix(6, 8, rng), 2, {false, true});
  other.import_state(dict, "p.");
  Md c;
  other.forward(x, c, false);
  CHECK(c == a);
  mbok::StateDict wrong;
  REQUIRE_THROWS(other.import_state(wrong, "p."));
}
