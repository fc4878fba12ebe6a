// BooleanOptimizer's signal scaling (none, rms, sign), accumulator warm start, the
// learning-rate schedule and the Hamming distance used to count flips.

#include <mbok/bit_matrix.hpp>
#include <mbok/boolean_optimizer.hpp>
#include <mbok/schedule.hpp>

#include <cmath>
#include <limits>
#include <random>

#include "../../support.hpp"

namespace mbok::test {
namespace {

constexpr AccumulatorType kTypes[] = {AccumulatorType::f32, AccumulatorType::f16,
                                      AccumulatorType::i8};

// A rows x cols kernel with random signs and a random signal.
struct Tensor2 {
  BitMatrix bits;
  std::vector<float> q;
  Tensor2(std::size_t rows, std::size_t cols, std::uint32_t seed)
      : bits(rows, cols), q(rows * cols) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> n(0.0f, 1.0f);
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < cols; ++j) bits.set_bit(i, j, rng() & 1u);
    for (auto& v : q) v = n(rng);
  }
  BooleanParameter param(const std::string& name) {
    return BooleanParameter{name, &bits, q.data(), bits.cols()};
  }
};

// Runs `steps` steps with the signal multiplied by `factor` (a fresh copy each time).
BitMatrix train(SignalScaling scaling, AccumulatorType type, float factor, double eta, int steps) {
  Tensor2 t(13, 70, 7);
  const std::vector<float> q0 = t.q;
  BooleanOptimizerOptions o;
  o.signal_scaling = scaling;
  o.accumulator = type;
  o.learning_rate = eta;
  BooleanOptimizer opt({t.param("w")}, o);
  for (int s = 0; s < steps; ++s) {
    for (std::size_t e = 0; e < q0.size(); ++e)
      t.q[e] = factor * q0[e] * (1.0f + 0.25f * float(s % 3));  // varies per step
    opt.step();
  }
  return t.bits;
}

TEST_CASE("rms and sign scaling make the flips independent of the signal's unit",
          "[optimizer][scaling]") {
  for (AccumulatorType type : kTypes) {
    INFO("accumulator " << accumulator_name(type));
    for (SignalScaling scaling : {SignalScaling::rms, SignalScaling::sign}) {
      INFO("scaling " << signal_scaling_name(scaling));
      // Powers of two keep every product exact, so the flips must be identical.
      const BitMatrix ref = train(scaling, type, 1.0f, 0.4, 6);
      CHECK(train(scaling, type, 1.0f / 1024, 0.4, 6) == ref);
      CHECK(train(scaling, type, 4096.0f, 0.4, 6) == ref);
      CHECK(hamming_distance(ref, Tensor2(13, 70, 7).bits) > 0);  // it did flip bits
    }
    // Without scaling, a small signal moves nothing at the same eta.
    const BitMatrix none_small = train(SignalScaling::none, type, 1.0f / 1024, 0.4, 6);
    CHECK(hamming_distance(none_small, Tensor2(13, 70, 7).bits) == 0);
  }
}

TEST_CASE("rms scaling divides by the tensor's RMS; sign scaling pushes by eta",
          "[optimizer][scaling]") {
  BitMatrix bits(1, 4);                               // all +1
  std::vector<float> q = {3.0f, -1.0f, 1.0f, -1.0f};  // rms = sqrt(12 / 4) = sqrt(3)
  BooleanOptimizerOptions o;
  o.accumulator = AccumulatorType::f32;
  o.threshold = 10.0;  // no flips
  o.signal_scaling = SignalScaling::rms;
  o.learning_rate = 2.0;
  BooleanOptimizer rms({BooleanParameter{"w", &bits, q.data(), 4}}, o);
  rms.step();
  const float r = std::sqrt(3.0f);
  CHECK(rms.accumulator(0, 0, 0) == Approx(2.0f * 3.0f / r));
  CHECK(rms.accumulator(0, 0, 1) == Approx(-2.0f / r));
  o.signal_scaling = SignalScaling::sign;
  BooleanOptimizer sgn({BooleanParameter{"w", &bits, q.data(), 4}}, o);
  sgn.step();
  CHECK(sgn.accumulator(0, 0, 0) == 2.0f);
  CHECK(sgn.accumulator(0, 0, 1) == -2.0f);
  // A zero signal under rms: only the decay applies, no division by zero.
  std::fill(q.begin(), q.end(), 0.0f);
  rms.step();
  CHECK(std::isfinite(rms.accumulator(0, 0, 0)));
  CHECK(rms.last_stats().flips() == 0);
}

TEST_CASE("warm start sets the accumulators and the next step keeps them",
          "[optimizer][warm_start]") {
  for (AccumulatorType type : kTypes) {
    INFO("accumulator " << accumulator_name(type));
    BitMatrix bits(2, 3);  // all +1
    std::vector<float> q(6, 0.0f);
    BooleanOptimizerOptions o;
    o.accumulator = type;
    BooleanOptimizer opt({BooleanParameter{"w", &bits, q.data(), 3}}, o);
    // Stride 4: the fourth value of each row is ignored.
    const std::vector<float> m = {0.9f, -0.5f, 0.25f, 99.0f, 0.0f, 0.5f, -0.75f, 99.0f};
    opt.set_accumulators(0, m.data(), 4);
    const double tol = type == AccumulatorType::i8 ? 1.0 / 128 : 1e-3;
    CHECK(opt.accumulator(0, 0, 0) == Approx(0.9).margin(tol));
    CHECK(opt.accumulator(0, 1, 2) == Approx(-0.75).margin(tol));
    CHECK(opt.beta(0) == 1.0);  // adaptive beta keeps a warm start at the next step
    // A push of 0.2 flips only the element warmed to 0.9 (w = +1, m = 1.1 >= 1).
    std::fill(q.begin(), q.end(), 0.2f);
    opt.step();
    CHECK(opt.last_stats().flips() == 1);
    CHECK(bits.sign(0, 0) == -1);
    // Bad input changes nothing.
    std::vector<float> bad = m;
    bad[5] = std::numeric_limits<float>::quiet_NaN();
    const float before = opt.accumulator(0, 0, 1);
    CHECK_THROWS_AS(opt.set_accumulators(0, bad.data(), 4), InvalidArgument);
    CHECK_THROWS_AS(opt.set_accumulators(0, m.data(), 2), InvalidArgument);
    CHECK_THROWS_AS(opt.set_accumulators(1, m.data(), 4), InvalidArgument);
    CHECK(opt.accumulator(0, 0, 1) == before);
  }
}

TEST_CASE("unknown signal scaling is rejected", "[optimizer][errors]") {
  BooleanOptimizerOptions o;
  o.signal_scaling = static_cast<SignalScaling>(7);
  CHECK_THROWS_AS(BooleanOptimizer({}, o), InvalidArgument);
  CHECK(std::string(signal_scaling_name(SignalScaling::rms)) == "rms");
}

TEST_CASE("warmup then cosine decay to the floor", "[schedule]") {
  const WarmupCosine s{2.0, 100, 10, 0.1};
  CHECK(s.at(0) == Approx(0.2));
  CHECK(s.at(9) == Approx(2.0));
  CHECK(s.at(10) == Approx(2.0));
  CHECK(s.at(55) == Approx(2.0 * (0.1 + 0.9 * 0.5)));
  CHECK(s.at(100) == Approx(0.2));
  CHECK(s.at(1000) == Approx(0.2));
  CHECK_THROWS_AS(s.at(-1), InvalidArgument);
  CHECK_THROWS_AS((WarmupCosine{1.0, 10, 11, 0.1}.at(0)), InvalidArgument);
  CHECK_THROWS_AS((WarmupCosine{1.0, 10, 1, 1.5}.at(0)), InvalidArgument);
  CHECK_THROWS_AS((WarmupCosine{NAN, 10, 1, 0.1}.at(0)), InvalidArgument);
}

TEST_CASE("hamming distance counts differing elements", "[bit_matrix]") {
  for (std::size_t cols : {1u, 63u, 64u, 65u, 511u, 513u}) {
    INFO("cols " << cols);
    BitMatrix a(3, cols), b(3, cols);
    std::size_t expected = 0;
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t j = 0; j < cols; j += 3 + i) {
        b.set_bit(i, j, true);
        ++expected;
      }
    CHECK(hamming_distance(a, b) == expected);
    CHECK(hamming_distance(b, b) == 0);
  }
  CHECK_THROWS_AS(hamming_distance(BitMatrix(2, 3), BitMatrix(3, 2)), InvalidArgument);
}

}  // namespace
}  // namespace mbok::test
