// Converts a float layer to K = 1..4 Boolean kernels by successive SVID and prints, per K,
// the relative reconstruction error, the bits per weight (scales included) and the time.
//
//   layer_conversion [rows cols]        (default 1024 x 1024)
//
// Two layers are converted: a Gaussian one (for which one kernel leaves the known
// sqrt(1 - 2/pi) = 0.603 relative error) and one shaped like trained LLM weights (row and
// column magnitudes that vary, a low-rank part, heavy-tailed entries). Heavy tails are what
// make binarizing real layers hard: a few large weights carry much of the norm, and each
// added kernel pays off less than for Gaussian weights.
#include <mbok/mbok.hpp>
#include <mbok/svid.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

namespace {

Eigen::MatrixXf gaussian_layer(int rows, int cols, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  return Eigen::MatrixXf::NullaryExpr(rows, cols, [&]() { return normal(rng); });
}

Eigen::MatrixXf structured_layer(int rows, int cols, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::student_t_distribution<float> heavy(3.0f);
  std::lognormal_distribution<float> magnitude(0.0f, 0.5f);
  const Eigen::VectorXf row_scale = Eigen::VectorXf::NullaryExpr(rows, [&]() { return magnitude(rng); });
  const Eigen::VectorXf col_scale = Eigen::VectorXf::NullaryExpr(cols, [&]() { return magnitude(rng); });
  const int rank = 8;
  const Eigen::MatrixXf u = Eigen::MatrixXf::NullaryExpr(rows, rank, [&]() { return normal(rng); });
  const Eigen::MatrixXf v = Eigen::MatrixXf::NullaryExpr(rank, cols, [&]() { return normal(rng); });
  const Eigen::MatrixXf noise = Eigen::MatrixXf::NullaryExpr(rows, cols, [&]() { return heavy(rng); });
  const Eigen::MatrixXf base = 0.5f * u * v / std::sqrt(static_cast<float>(rank)) + noise;
  return row_scale.asDiagonal() * base * col_scale.asDiagonal();
}

void report(const char* name, const Eigen::MatrixXf& w) {
  std::printf("\n%s layer, %ld x %ld\n", name, static_cast<long>(w.rows()), static_cast<long>(w.cols()));
  std::printf("| K | relative error | bits per weight | SVID time (ms) |\n");
  std::printf("|---|----------------|-----------------|----------------|\n");
  for (std::size_t k = 1; k <= 4; ++k) {
    const auto start = std::chrono::steady_clock::now();
    const mbok::SvidResult<float> result = mbok::svid(w, k);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("| %zu | %14.4f | %15.4f | %14.1f |\n", k, result.relative_residual.back(),
                result.weights.bits_per_weight(), ms);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int rows = 1024, cols = 1024;
  if (argc == 3) {
    rows = std::atoi(argv[1]);
    cols = std::atoi(argv[2]);
  }
  if (argc != 1 && argc != 3) {
    std::fprintf(stderr, "usage: %s [rows cols]\n", argv[0]);
    return 2;
  }
  if (rows <= 0 || cols <= 0) {
    std::fprintf(stderr, "error: rows and cols must be positive integers\n");
    return 2;
  }
  try {
    std::mt19937 rng(7);
    std::printf("mbok %s, kernels: %s\n", mbok::version(), mbok::isa_name(mbok::active_isa()));
    report("Gaussian", gaussian_layer(rows, cols, rng));
    report("Structured", structured_layer(rows, cols, rng));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
