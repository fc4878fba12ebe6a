// The shared-scale K = 2 format (shared_scales.hpp): its fit never gets worse with more
// rounds and recovers a weight that has the format exactly, its weights reconstruct what the
// fit reports, the projection puts a layer's scales on the constraint, the free refit improves
// on the SVID it starts from, and ratios are parsed strictly.

#include <mbok/svid.hpp>

#include <random>

#include "catch.hpp"
#include "shared_scales.hpp"

namespace {

Eigen::MatrixXf random_matrix(Eigen::Index m, Eigen::Index n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Eigen::MatrixXf w(m, n);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = normal(rng);
  return w;
}

}  // namespace

TEST_CASE("the shared-scale fit descends and reconstructs", "[shared_scales]") {
  // Rows and columns of different sizes, as in a trained layer.
  Eigen::MatrixXf w = random_matrix(48, 40, 1);
  for (Eigen::Index i = 0; i < w.rows(); ++i) w.row(i) *= 0.5f + float(i % 5) * 0.25f;
  for (const double c : {1.0 / 3, 0.5, 2.0 / 3}) {
    double previous = 1e300;
    for (int rounds = 0; rounds <= 6; ++rounds) {
      const tiny::SharedScaleFit fit = tiny::fit_shared_scales(w, c, rounds);
      CHECK(fit.relative_error <= previous + 1e-9);
      previous = fit.relative_error;
      // Kernel 2 is the magnitude bit: b2 = +-b1.
      CHECK((fit.b1.cwiseAbs().array() == 1).all());
      CHECK((fit.b2.cwiseAbs().array() == 1).all());
      const auto weights = tiny::to_weights(fit, c);
      REQUIRE(weights.num_kernels() == 2);
      CHECK(weights.s_in(0) == weights.s_in(1));
      CHECK(weights.s_out(1).isApprox(float(c) * weights.s_out(0)));
      CHECK(weights.relative_error(w) == Approx(fit.relative_error).epsilon(1e-4));
    }
    CHECK(previous < 0.5);
  }
}

TEST_CASE("the shared-scale fit recovers a weight of the format", "[shared_scales]") {
  const Eigen::Index m = 32, n = 24;
  const double c = 0.5;
  const Eigen::MatrixXf b1 =
      random_matrix(m, n, 2).unaryExpr([](float x) { return x < 0 ? -1.f : 1.f; });
  const Eigen::MatrixXf b2 =
      random_matrix(m, n, 3).unaryExpr([](float x) { return x < 0 ? -1.f : 1.f; });
  const Eigen::VectorXf s_out = random_matrix(m, 1, 4).cwiseAbs().array() + 0.5f;
  const Eigen::VectorXf s_in = random_matrix(n, 1, 5).cwiseAbs().array() + 0.5f;
  const Eigen::MatrixXf w =
      ((s_out * s_in.transpose()).array() * (b1 + float(c) * b2).array()).matrix();
  const tiny::SharedScaleFit fit = tiny::fit_shared_scales(w, c, 30);
  CHECK(fit.relative_error < 1e-5);
}

TEST_CASE("the projection puts a layer's scales on the constraint", "[shared_scales]") {
  const Eigen::MatrixXf w = random_matrix(16, 24, 6);
  const double c = 0.6;
  auto weights = tiny::to_weights(tiny::fit_shared_scales(w, c, 3), c);
  // An optimizer step moves the four vectors apart.
  weights.s_out(0) += 0.01f * random_matrix(16, 1, 7);
  weights.s_out(1) += 0.01f * random_matrix(16, 1, 8);
  weights.s_in(0) += 0.01f * random_matrix(24, 1, 9);
  weights.s_in(1) += 0.01f * random_matrix(24, 1, 10);
  mbok::BooleanLinear<float> layer(weights);
  const Eigen::VectorXf mean_in = 0.5f * (weights.s_in(0) + weights.s_in(1));
  tiny::project_shared_scales(layer, c);
  CHECK(layer.s_in(0) == layer.s_in(1));
  CHECK(layer.s_in(0).isApprox(mean_in));
  CHECK(layer.s_out(1).isApprox(float(c) * layer.s_out(0)));
  // The least-squares point: the residual is orthogonal to the constraint's direction (1, c).
  const Eigen::VectorXf r1 = weights.s_out(0) - layer.s_out(0);
  const Eigen::VectorXf r2 = weights.s_out(1) - layer.s_out(1);
  CHECK((r1 + float(c) * r2).norm() < 1e-6f);
  // On the constraint it changes nothing.
  const Eigen::VectorXf before = layer.s_out(0);
  tiny::project_shared_scales(layer, c);
  CHECK(layer.s_out(0).isApprox(before));
}

TEST_CASE("the free K = 2 refit improves on the SVID", "[shared_scales]") {
  const Eigen::MatrixXf w = random_matrix(40, 32, 11);
  const double svid = mbok::svid<float>(w, 2).relative_residual.back();
  double start = 0, refit = 0;
  const auto w0 = tiny::fit_free_k2(w, 0, start);
  CHECK(start == Approx(svid).epsilon(1e-4));
  CHECK(w0.relative_error(w) == Approx(start).epsilon(1e-4));
  const auto w5 = tiny::fit_free_k2(w, 5, refit);
  CHECK(refit < start);
  CHECK(w5.relative_error(w) == Approx(refit).epsilon(1e-4));
}

TEST_CASE("ratios are p/q with 0 < p < q", "[shared_scales]") {
  CHECK(tiny::parse_ratio("1/2").value() == 0.5);
  CHECK(tiny::parse_ratio("3/5").levels() == "{+-8, +-2}");
  for (const char* bad : {"2/1", "0/3", "1/1", "1/", "/2", "1/2x", "half", "1/127"})
    CHECK_THROWS_AS(tiny::parse_ratio(bad), mbok::InvalidArgument);
}
