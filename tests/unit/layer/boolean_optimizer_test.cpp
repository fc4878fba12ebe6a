// BooleanOptimizer semantics on hand-made cases, accumulator formats, state and errors.

#include <mbok/boolean_linear.hpp>
#include <mbok/boolean_optimizer.hpp>

#include <cmath>
#include <limits>
#include <random>

#include "../../support.hpp"

namespace mbok::test {
namespace {

constexpr AccumulatorType kTypes[] = {AccumulatorType::f32, AccumulatorType::f16,
                                      AccumulatorType::i8};

// One 1 x cols kernel with given signs and a signal buffer the test writes.
struct Toy {
  BitMatrix bits;
  std::vector<float> q;
  Toy(std::initializer_list<int> signs) : bits(1, signs.size()), q(signs.size(), 0.0f) {
    std::size_t j = 0;
    for (int s : signs) bits.set_bit(0, j++, s < 0);
  }
  BooleanParameter param(const std::string& name = "toy") {
    return BooleanParameter{name, &bits, q.data(), q.size()};
  }
  std::vector<int> signs() const {
    std::vector<int> out;
    for (std::size_t j = 0; j < bits.cols(); ++j) out.push_back(bits.sign(0, j));
    return out;
  }
};

TEST_CASE("flip rule: agreeing signs and |m| >= threshold flip, then m resets", "[optimizer]") {
  for (AccumulatorType type : kTypes) {
    INFO("accumulator " << accumulator_name(type));
    Toy toy{+1, -1, +1, -1, +1};
    BooleanOptimizerOptions opt;
    opt.accumulator = type;
    BooleanOptimizer o({toy.param()}, opt);
    CHECK(o.beta(0) == 0.0);  // adaptive beta starts at 0
    // m = q: + with w = + flips; - with w = - flips; - with w = + does not; 0.5 is below
    // the threshold; exactly the threshold flips.
    toy.q = {1.5f, -1.5f, -1.5f, 0.5f, 1.0f};
    o.step();
    CHECK(toy.signs() == std::vector<int>{-1, +1, +1, -1, -1});
    CHECK(o.last_stats().flips() == 3);
    CHECK(o.last_stats().tensors.at(0).name == "toy");
    CHECK(o.last_stats().rate() == Approx(0.6));
    CHECK(o.accumulator(0, 0, 0) == 0.0f);
    CHECK(o.accumulator(0, 0, 2) == -1.5f);
    CHECK(o.accumulator(0, 0, 3) == 0.5f);
    CHECK(o.beta(0) == Approx(0.4));  // 1 - flip fraction
    // Step 2: m = 0.4 m + q.
    toy.q = {0.0f, 0.0f, 0.5f, -1.25f, 0.0f};
    o.step();
    CHECK(o.last_stats().tensors[0].beta == Approx(0.4));
    CHECK(toy.signs() ==
          std::vector<int>{-1, +1, +1, +1, -1});  // m3 = 0.2 - 1.25 agrees with w = -1
    CHECK(o.accumulator(0, 0, 2) ==
          Approx(0.4f * -1.5f + 0.5f).margin(type == AccumulatorType::i8 ? 1.0 / 64 : 1e-3));
    CHECK(o.accumulator(0, 0, 3) == 0.0f);
    CHECK(o.beta(0) == Approx(0.8));
    CHECK(o.step_count() == 2);
  }
}

TEST_CASE("fixed beta and the learning rate scale the accumulator", "[optimizer]") {
  Toy toy{+1, +1};
  BooleanOptimizerOptions opt;
  opt.accumulator = AccumulatorType::f32;
  opt.beta = 0.5;
  opt.learning_rate = 0.25;
  opt.threshold = 10;
  BooleanOptimizer o({toy.param()}, opt);
  toy.q = {4.0f, -8.0f};
  o.step();
  o.step();
  CHECK(o.accumulator(0, 0, 0) == Approx(0.5 * 1.0 + 1.0));
  CHECK(o.accumulator(0, 0, 1) == Approx(0.5 * -2.0 - 2.0));
  CHECK(o.beta(0) == 0.5);
  CHECK(o.last_stats().flips() == 0);
}

TEST_CASE("frozen kernels are untouched and cost no state", "[optimizer]") {
  MultiKernelWeights<float> w(8, 40);
  for (int k = 0; k < 3; ++k)
    w.add_kernel(random_bits(8, 40), Eigen::VectorXf::Ones(8), Eigen::VectorXf::Ones(40));
  BooleanLinear<float> layer(w);
  auto params = layer.boolean_parameters("l.");
  REQUIRE(params.size() == 1);
  CHECK(params[0].name == "l.kernels.2.bits");
  BooleanOptimizerOptions opt;
  opt.learning_rate = 100;
  BooleanOptimizer o(params, opt);
  CHECK(o.num_weights() == 8 * 40);
  const BooleanLinear<float>::RowMatrix x = random_matrix(16, 40);
  for (int s = 0; s < 3; ++s) {
    layer.backward(x, random_matrix(16, 8));
    o.step();
  }
  CHECK(o.last_stats().flips() > 0);
  CHECK(layer.kernel(0) == w.kernel(0));
  CHECK(layer.kernel(1) == w.kernel(1));
  CHECK(layer.kernel(2) != w.kernel(2));
}

TEST_CASE("memory: state per trainable weight is the accumulator's size", "[optimizer][memory]") {
  for (AccumulatorType type : kTypes) {
    BitMatrix a(33, 100), b(7, 513);
    std::vector<float> qa(33 * 100), qb(7 * 513);
    BooleanOptimizerOptions opt;
    opt.accumulator = type;
    BooleanOptimizer o({{"a", &a, qa.data(), 100}, {"b", &b, qb.data(), 513}}, opt);
    CHECK(o.num_weights() == 33 * 100 + 7 * 513);
    CHECK(o.accumulator_bytes() == o.num_weights() * accumulator_size(type));
    CHECK(o.accumulator_bytes_per_weight() == static_cast<double>(accumulator_size(type)));
    // Everything else is a few scalars per tensor: no copy of the weights.
    CHECK(o.state_bytes() - o.accumulator_bytes() <= 64);
  }
  CHECK(accumulator_size(AccumulatorType::f32) == 4);
  CHECK(accumulator_size(AccumulatorType::f16) == 2);
  CHECK(accumulator_size(AccumulatorType::i8) == 1);
}

TEST_CASE("i8 stochastic rounding keeps increments below one step in expectation", "[optimizer]") {
  const std::size_t n = 4000;
  BitMatrix bits(1, n);                     // all +1; a negative signal never flips them
  std::vector<float> q(n, -0.25f / 64.0f);  // a quarter of the fixed-point step
  BooleanOptimizerOptions opt;
  opt.accumulator = AccumulatorType::i8;
  opt.beta = 1.0;
  BooleanOptimizer o({{"k", &bits, q.data(), n}}, opt);
  for (int s = 0; s < 40; ++s) o.step();
  double mean = 0;
  for (std::size_t j = 0; j < n; ++j) mean += o.accumulator(0, 0, j);
  mean /= static_cast<double>(n);
  CHECK(mean == Approx(-40 * 0.25 / 64).epsilon(0.05));  // round-to-nearest would give 0
  CHECK(bits.popcount() == 0);
}

TEST_CASE("f16 conversion rounds to nearest and saturates", "[optimizer]") {
  // Every finite half survives the round trip.
  for (std::uint32_t h = 0; h < 0x10000u; ++h) {
    if (((h >> 10) & 0x1Fu) == 0x1Fu) continue;
    const auto half = static_cast<std::uint16_t>(h);
    REQUIRE(detail::float_to_f16_saturating(f16_to_float(half)) == half);
  }
  // Random floats go to a nearest half (neighbours are no closer).
  std::uniform_real_distribution<float> mag(-20.0f, 17.0f);
  for (int i = 0; i < 20000; ++i) {
    const float f = std::ldexp(1.0f, static_cast<int>(mag(rng()))) *
                    (1.0f + static_cast<float>(i % 977) / 977.0f) * (i % 2 ? -1.0f : 1.0f);
    const std::uint16_t h = detail::float_to_f16_saturating(f);
    const float back = f16_to_float(h);
    const float err = std::abs(back - f);
    for (int d : {-1, 1}) {
      const auto other = static_cast<std::uint16_t>(h + d);
      if (((other >> 10) & 0x1Fu) == 0x1Fu || ((h & 0x7FFFu) == 0 && d < 0)) continue;
      const float o = f16_to_float(other);
      if ((o < 0) == (f < 0)) REQUIRE(err <= std::abs(o - f));
    }
  }
  CHECK(f16_to_float(detail::float_to_f16_saturating(1e9f)) == 65504.0f);
  CHECK(f16_to_float(detail::float_to_f16_saturating(-1e9f)) == -65504.0f);
  CHECK(f16_to_float(detail::float_to_f16_saturating(1.0f / 3.0f)) ==
        Approx(1.0 / 3.0).epsilon(1e-3));
}

TEST_CASE("state save and load round-trips for every accumulator", "[optimizer][state]") {
  for (AccumulatorType type : kTypes) {
    INFO("accumulator " << accumulator_name(type));
    BitMatrix a = random_bits(12, 70), a_copy = a;
    std::vector<float> q(12 * 70);
    BooleanOptimizerOptions opt;
    opt.accumulator = type;
    opt.learning_rate = 0.4;
    BooleanOptimizer o({{"a", &a, q.data(), 70}}, opt);
    std::normal_distribution<float> dist;
    auto fill = [&] {
      for (auto& v : q) v = dist(rng());
    };
    for (int s = 0; s < 3; ++s) {
      fill();
      o.step();
    }
    StateDict dict;
    o.export_state(dict, "opt.");
    CHECK(dict.at("opt.a.accumulator").dtype == (type == AccumulatorType::f32   ? DType::f32
                                                 : type == AccumulatorType::f16 ? DType::f16
                                                                                : DType::i8));
    CHECK(dict.at("opt.a.accumulator").shape == std::vector<std::int64_t>{12, 70});
    BitMatrix b = a;
    BooleanOptimizer restored({{"a", &b, q.data(), 70}}, opt);
    restored.import_state(dict, "opt.");
    CHECK(restored.step_count() == 3);
    CHECK(restored.beta(0) == o.beta(0));
    for (int s = 0; s < 2; ++s) {
      fill();
      o.step();
      restored.step();
    }
    CHECK(a == b);
    CHECK(a != a_copy);
    for (std::size_t i = 0; i < 12; ++i)
      for (std::size_t j = 0; j < 70; ++j)
        REQUIRE(o.accumulator(0, i, j) == restored.accumulator(0, i, j));
  }
}

TEST_CASE("optimizer rejects bad input and changes nothing", "[optimizer][errors]") {
  Toy toy{+1, -1, +1};
  BooleanOptimizerOptions opt;
  opt.accumulator = AccumulatorType::f32;
  BooleanOptimizer o({toy.param()}, opt);
  toy.q = {0.5f, -0.5f, 0.25f};
  o.step();
  const BitMatrix bits_before = toy.bits;
  const float acc_before = o.accumulator(0, 0, 0);
  toy.q = {100.0f, std::numeric_limits<float>::quiet_NaN(), 100.0f};
  CHECK_THROWS_WITH(o.step(), test::contains("signal of 'toy' is not finite"));
  toy.q = {100.0f, std::numeric_limits<float>::infinity(), 100.0f};
  CHECK_THROWS_AS(o.step(), InvalidArgument);
  CHECK(toy.bits == bits_before);
  CHECK(o.accumulator(0, 0, 0) == acc_before);
  CHECK(o.step_count() == 1);

  auto bad = opt;
  bad.learning_rate = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(o.set_options(bad), test::contains("learning rate"));
  CHECK_THROWS_AS(o.set_learning_rate(std::numeric_limits<double>::infinity()), InvalidArgument);
  CHECK_THROWS_AS(o.set_learning_rate(0.0), InvalidArgument);
  bad = opt;
  bad.threshold = -1;
  CHECK_THROWS_WITH(BooleanOptimizer({}, bad), test::contains("threshold"));
  bad = opt;
  bad.beta = 1.5;
  CHECK_THROWS_WITH(BooleanOptimizer({}, bad), test::contains("beta"));
  bad = opt;
  bad.accumulator = AccumulatorType::i8;
  CHECK_THROWS_WITH(o.set_options(bad), test::contains("fixed at construction"));
  CHECK_THROWS_WITH(o.add_parameters({toy.param()}), test::contains("duplicate"));
  CHECK_THROWS_AS(o.add_parameters({BooleanParameter{"x", nullptr, toy.q.data(), 3}}),
                  InvalidArgument);
  CHECK_THROWS_WITH(o.add_parameters({BooleanParameter{"y", &toy.bits, toy.q.data(), 2}}),
                    test::contains("stride"));

  // State of a different shape or accumulator type is refused as a whole.
  StateDict dict;
  o.export_state(dict, "");
  BitMatrix other(2, 3);
  std::vector<float> qo(6);
  BooleanOptimizer wrong_shape({{"toy", &other, qo.data(), 3}}, opt);
  CHECK_THROWS_WITH(wrong_shape.import_state(dict, ""), test::contains("shape"));
  CHECK(wrong_shape.step_count() == 0);
  auto opt16 = opt;
  opt16.accumulator = AccumulatorType::f16;
  BooleanOptimizer wrong_type({toy.param()}, opt16);
  CHECK_THROWS_WITH(wrong_type.import_state(dict, ""), test::contains("accumulator_type"));
  BooleanOptimizer wrong_name({toy.param("other")}, opt);
  CHECK_THROWS_WITH(wrong_name.import_state(dict, ""),
                    test::contains("missing tensor 'other.accumulator'"));
  CHECK(wrong_name.step_count() == 0);
}

}  // namespace
}  // namespace mbok::test
namespace mbok::test {
namespace {

// Rows [r0, r1) of `full` as a matrix of their own.
BitMatrix row_slice(const BitMatrix& full, std::size_t r0, std::size_t r1) {
  BitMatrix out(r1 - r0, full.cols());
  for (std::size_t i = r0; i < r1; ++i)
    for (std::size_t j = 0; j < full.cols(); ++j) out.set_bit(i - r0, j, full.bit(i, j));
  return out;
}

TEST_CASE("slices stepped with the whole tensor's RMS and beta equal the whole tensor",
          "[optimizer][slices]") {
  // A data-parallel step gives each process a block of rows: with set_next_signal_rms (the
  // whole tensor's RMS) and set_beta (the whole tensor's flip fraction) the blocks flip the
  // same bits as one optimizer over the whole tensor.
  for (AccumulatorType type : {AccumulatorType::f32, AccumulatorType::f16}) {
    INFO("accumulator " << accumulator_name(type));
    constexpr std::size_t rows = 9, cols = 70, split = 4;
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    BitMatrix whole(rows, cols);
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < cols; ++j) whole.set_bit(i, j, normal(rng) < 0);
    BitMatrix top = row_slice(whole, 0, split), bottom = row_slice(whole, split, rows);
    std::vector<float> q(rows * cols);
    BooleanOptimizerOptions opt;
    opt.accumulator = type;
    opt.signal_scaling = SignalScaling::rms;
    opt.learning_rate = 0.7;
    BooleanOptimizer one({BooleanParameter{"w", &whole, q.data(), cols}}, opt);
    BooleanOptimizer a({BooleanParameter{"w", &top, q.data(), cols}}, opt);
    BooleanOptimizer b({BooleanParameter{"w", &bottom, q.data() + split * cols, cols}}, opt);
    std::size_t flips = 0;
    for (int step = 0; step < 6; ++step) {
      double squares = 0;
      for (float& v : q) {
        v = 3.0f * normal(rng);
        squares += static_cast<double>(v) * v;
      }
      const double rms = std::sqrt(squares / static_cast<double>(q.size()));
      one.step();
      a.set_next_signal_rms({rms});
      b.set_next_signal_rms({rms});
      a.step();
      b.step();
      const std::size_t sliced = a.last_stats().flips() + b.last_stats().flips();
      CHECK(sliced == one.last_stats().flips());
      flips += sliced;
      const double beta = 1.0 - static_cast<double>(sliced) / static_cast<double>(rows * cols);
      a.set_beta(0, beta);
      b.set_beta(0, beta);
      CHECK(a.beta(0) == Approx(one.beta(0)));
      CHECK(row_slice(whole, 0, split) == top);
      CHECK(row_slice(whole, split, rows) == bottom);
      for (std::size_t j = 0; j < cols; ++j)
        CHECK(b.accumulator(0, 0, j) == one.accumulator(0, split, j));
    }
    CHECK(flips > 0);
    CHECK_THROWS_AS(a.set_next_signal_rms({1.0, 2.0}), InvalidArgument);
    CHECK_THROWS_AS(a.set_next_signal_rms({-1.0}), InvalidArgument);
    CHECK_THROWS_AS(a.set_beta(0, 1.5), InvalidArgument);
    CHECK_THROWS_AS(a.set_beta(1, 0.5), InvalidArgument);
  }
}

}  // namespace
}  // namespace mbok::test
