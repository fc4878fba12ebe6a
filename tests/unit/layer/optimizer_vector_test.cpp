// The Boolean optimizer's steps on every ISA (AVX-512, AVX2, scalar) against a naive reference
// written here from the documented rule (boolean_optimizer.hpp): after several steps on edge
// shapes (columns not multiples of 16 or 64, a single row) the bits and every accumulator are
// identical, bit for bit, for each accumulator type and signal scaling, including saturated
// f16 accumulators and clamped i8 codes. The reference is one side of every comparison, so a
// wrong vector step cannot pass by being compared with itself (f16 on AVX2 runs the scalar
// loop; the scalar tier is also checked, against the reference).

#include <mbok/boolean_optimizer.hpp>

#include <cstring>
#include <vector>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <optional>

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

// The optimizer's rule, element by element, from its documentation: eta (or eta / rms(q)), m <-
// beta m + eta g, flip when |m| >= threshold and sign(m) agrees with w, then m <- 0; beta
// adaptive (1 - last flip fraction, starting at 0) or fixed; storage f32 (clamped to +-3e38),
// f16 (round to nearest even, saturating) or i8 (code = floor(m / scale + u), u from the
// counter generator keyed by (seed, step, tensor, element), clamped to [-127, 127]).
Run reference_steps(AccumulatorType type, SignalScaling scaling, double lr, std::size_t rows,
                    std::size_t cols) {
  rng().seed(rows * 1000 + cols);
  Run out;
  out.bits = random_bits(rows, cols);
  const std::size_t ld = cols + 3, n = rows * cols;
  const double threshold = 1.0;
  const std::optional<double> fixed_beta =
      lr > 100 ? std::optional<double>(1.0) : std::optional<double>();
  double beta = fixed_beta ? *fixed_beta : 0.0;
  std::vector<float> m32(n, 0.0f);
  std::vector<std::uint16_t> m16(n, 0);
  std::vector<std::int8_t> m8(n, 0);
  const double i8_scale = threshold / 64;
  const std::uint64_t seed = BooleanOptimizerOptions{}.seed;
  const auto load = [&](std::size_t e) {
    switch (type) {
      case AccumulatorType::f32:
        return m32[e];
      case AccumulatorType::f16:
        return f16_to_float(m16[e]);
      case AccumulatorType::i8:
        return static_cast<float>(m8[e]) * static_cast<float>(i8_scale);
    }
    return 0.0f;
  };
  for (int step = 1; step <= 5; ++step) {
    const Eigen::MatrixXf r = random_matrix(rows, ld);
    std::vector<float> q(rows * ld);
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < ld; ++j)
        q[i * ld + j] = r(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) *
                        (j % 7 == 0 ? 0.0f : 1.0f);
    double eta = lr;
    if (scaling == SignalScaling::rms) {
      // The same double sum as the optimizer's (an Eigen map over the tensor), so that eta is
      // the same float.
      const Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                       0, Eigen::OuterStride<>>
          map(q.data(), static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols),
              Eigen::OuterStride<>(static_cast<Eigen::Index>(ld)));
      const double rms = std::sqrt(map.cast<double>().squaredNorm() / static_cast<double>(n));
      eta = rms >= static_cast<double>(FLT_MIN) ? std::min(lr / rms, static_cast<double>(FLT_MAX))
                                                : 0.0;
    }
    const auto eta_f = static_cast<float>(eta), beta_f = static_cast<float>(beta);
    const std::uint64_t key = detail::splitmix64(
        seed ^ detail::splitmix64(static_cast<std::uint64_t>(step) * 0x100000001B3ull + 0));
    std::size_t flips = 0;
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < cols; ++j) {
        const std::size_t e = i * cols + j;
        const float qv = q[i * ld + j];
        const float g = scaling == SignalScaling::sign ? (qv > 0   ? 1.0f
                                                          : qv < 0 ? -1.0f
                                                                   : 0.0f)
                                                       : qv;
        float m = beta_f * load(e) + eta_f * g;
        const bool negative_w = out.bits.sign(i, j) < 0;
        if (std::abs(m) >= static_cast<float>(threshold) && (m < 0) == negative_w) {
          out.bits.flip(i, j);
          m = 0.0f;
          ++flips;
        }
        switch (type) {
          case AccumulatorType::f32:
            m32[e] = std::clamp(m, -3.0e38f, 3.0e38f);
            break;
          case AccumulatorType::f16:
            m16[e] = detail::float_to_f16_saturating(m);  // saturating at +-65504
            break;
          case AccumulatorType::i8: {
            const float x = std::floor(m * static_cast<float>(1.0 / i8_scale) +
                                       detail::counter_uniform(key, e));
            m8[e] = static_cast<std::int8_t>(std::clamp(x, -127.0f, 127.0f));
            break;
          }
        }
      }
    out.flips += flips;
    beta = fixed_beta ? *fixed_beta : 1.0 - static_cast<double>(flips) / static_cast<double>(n);
  }
  for (std::size_t e = 0; e < n; ++e) out.acc.push_back(load(e));
  return out;
}

TEST_CASE("optimizer step on every ISA equals the naive reference bit for bit", "[optimizer]") {
  const std::size_t shapes[][2] = {{1, 1}, {3, 17}, {5, 63}, {4, 65}, {7, 130}, {33, 200}};
  const AccumulatorType types[] = {AccumulatorType::f32, AccumulatorType::f16, AccumulatorType::i8};
  const SignalScaling scalings[] = {SignalScaling::none, SignalScaling::rms, SignalScaling::sign};
  std::size_t reference_flips = 0;
  for (const auto& shape : shapes)
    for (AccumulatorType type : types)
      for (SignalScaling scaling : scalings)
        for (double lr : {0.3, 3e4}) {
          CAPTURE(shape[0], shape[1], accumulator_name(type), signal_scaling_name(scaling), lr);
          const Run want = reference_steps(type, scaling, lr, shape[0], shape[1]);
          reference_flips += want.flips;
          for_each_isa([&](Isa isa) {
            const Run got = run_steps(isa, type, scaling, lr, shape[0], shape[1]);
            CHECK(got.flips == want.flips);
            CHECK(got.bits == want.bits);
            REQUIRE(got.acc.size() == want.acc.size());
            CHECK(std::memcmp(got.acc.data(), want.acc.data(), want.acc.size() * sizeof(float)) ==
                  0);
          });
        }
  CHECK(reference_flips > 100);  // the steps flipped bits
}

}  // namespace
}  // namespace mbok::test
