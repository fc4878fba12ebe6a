// The Boolean optimizer's vector steps (AVX-512, AVX2) against its scalar loop: after several steps
// on edge shapes (columns not multiples of 16 or 64, a single row) the bits and every
// accumulator are identical, bit for bit, for each accumulator type and signal scaling,
// including saturated f16 accumulators and clamped i8 codes.

#include <mbok/boolean_optimizer.hpp>

#include <cstring>
#include <vector>

#include "../../support.hpp"

namespace mbok::test {
namespace {

struct Run {
  BitMatrix bits;
  std::vector<float> acc;  // decoded accumulators after the last step
  std::size_t flips = 0;
};

Run run_steps(Isa isa, AccumulatorType type, SignalScaling scaling, double lr, std::size_t rows,
              std::size_t cols) {
  ScopedIsaLimit limit(isa);
  rng().seed(rows * 1000 + cols);  // the same bits and signals for every ISA
  Run out;
  out.bits = random_bits(rows, cols);
  const std::size_t ld = cols + 3;
  std::vector<float> q(rows * ld);
  BooleanOptimizerOptions opt;
  opt.accumulator = type;
  opt.signal_scaling = scaling;
  opt.learning_rate = lr;
  opt.threshold = 1.0;
  if (lr > 100) opt.beta = 1.0;  // let f16 accumulators grow into saturation
  BooleanOptimizer optimizer({BooleanParameter{"w", &out.bits, q.data(), ld}}, opt);
  for (int step = 0; step < 5; ++step) {
    const Eigen::MatrixXf r = random_matrix(rows, ld);
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < ld; ++j)
        q[i * ld + j] = r(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) *
                        (j % 7 == 0 ? 0.0f : 1.0f);  // some zeros for the sign scaling
    optimizer.step();
    out.flips += optimizer.last_stats().flips();
  }
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) out.acc.push_back(optimizer.accumulator(0, i, j));
  return out;
}

TEST_CASE("vector optimizer step equals the scalar step bit for bit", "[optimizer]") {
  const std::size_t shapes[][2] = {{1, 1}, {3, 17}, {5, 63}, {4, 65}, {7, 130}, {33, 200}};
  const AccumulatorType types[] = {AccumulatorType::f32, AccumulatorType::f16, AccumulatorType::i8};
  const SignalScaling scalings[] = {SignalScaling::none, SignalScaling::rms, SignalScaling::sign};
  for (const auto& shape : shapes)
    for (AccumulatorType type : types)
      for (SignalScaling scaling : scalings)
        for (double lr : {0.3, 3e4}) {
          CAPTURE(shape[0], shape[1], accumulator_name(type), signal_scaling_name(scaling), lr);
          const Run want = run_steps(Isa::scalar, type, scaling, lr, shape[0], shape[1]);
          for_each_isa([&](Isa isa) {
            const Run got = run_steps(isa, type, scaling, lr, shape[0], shape[1]);
            CHECK(got.flips == want.flips);
            CHECK(got.bits == want.bits);
            REQUIRE(got.acc.size() == want.acc.size());
            CHECK(std::memcmp(got.acc.data(), want.acc.data(), want.acc.size() * sizeof(float)) ==
                  0);
          });
        }
}

}  // namespace
}  // namespace mbok::test
