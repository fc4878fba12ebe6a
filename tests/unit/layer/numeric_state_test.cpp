// Numeric paths that could poison optimizer state: rms scaling of an all-subnormal signal
// (eta / rms overflowing float), imported scalars used as floats (scale, step), steps and
// registrations that fail halfway (injected allocation failures), and AdamW shapes whose
// product wraps.

#include <mbok/adamw.hpp>
#include <mbok/boolean_linear.hpp>
#include <mbok/boolean_optimizer.hpp>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "../../support.hpp"
#include "../failing_new.hpp"  // this area's one include: replaces operator new and delete

namespace mbok::test {
namespace {

constexpr AccumulatorType kAllTypes[] = {AccumulatorType::f32, AccumulatorType::f16,
                                         AccumulatorType::i8};

// Every accumulator of parameter `index` is finite; returns how many are nonzero.
std::size_t check_finite_accumulators(const BooleanOptimizer& opt, std::size_t index,
                                      std::size_t rows, std::size_t cols) {
  std::size_t nonzero = 0;
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) {
      const float m = opt.accumulator(index, i, j);
      INFO("accumulator (" << i << ", " << j << ")");
      REQUIRE(std::isfinite(m));
      nonzero += m != 0.0f;
    }
  return nonzero;
}

TEST_CASE("rms scaling: an all-subnormal signal adds nothing and the state stays loadable",
          "[optimizer][rms][numeric]") {
  for_each_isa([](Isa) {
    for (AccumulatorType type : kAllTypes) {
      INFO("accumulator " << accumulator_name(type));
      // 3 x 70: rows cross a 64-bit word and the vector tails.
      BitMatrix bits(3, 70);
      std::vector<float> q(3 * 70, 0.0f);
      q[5] = std::numeric_limits<float>::denorm_min();
      q[77] = -4 * std::numeric_limits<float>::denorm_min();
      q[150] = 1e-39f;  // subnormal
      const BitMatrix before = bits;
      BooleanOptimizerOptions o;
      o.signal_scaling = SignalScaling::rms;
      o.accumulator = type;
      BooleanOptimizer opt({{"w", &bits, q.data(), 70}}, o);
      for (int s = 0; s < 2; ++s) opt.step();
      CHECK(check_finite_accumulators(opt, 0, 3, 70) == 0);
      CHECK(bits == before);
      CHECK(opt.last_stats().flips() == 0);
      // The run's own checkpoint loads.
      StateDict state;
      opt.export_state(state, "opt.");
      BitMatrix bits2(3, 70);
      BooleanOptimizer other({{"w", &bits2, q.data(), 70}}, o);
      CHECK_NOTHROW(other.import_state(state, "opt."));

      // The same rule for an RMS passed in (a data-parallel slice): below FLT_MIN is zero.
      std::vector<float> normal(3 * 70, 0.25f);
      BitMatrix bits3(3, 70);
      BooleanOptimizer sliced({{"w", &bits3, normal.data(), 70}}, o);
      sliced.set_next_signal_rms({1e-39});
      sliced.step();
      CHECK(check_finite_accumulators(sliced, 0, 3, 70) == 0);
    }
  });
}

TEST_CASE("rms scaling: eta / rms is clamped to a finite float", "[optimizer][rms][numeric]") {
  for_each_isa([](Isa) {
    for (AccumulatorType type : kAllTypes) {
      INFO("accumulator " << accumulator_name(type));
      // rms = 1.5 FLT_MIN and eta 1000: eta / rms = 5.6e40 exceeds FLT_MAX.
      BitMatrix bits(2, 40);
      std::vector<float> q(2 * 40, 0.0f);
      for (std::size_t e = 0; e < q.size(); e += 2) q[e] = 1.5f * FLT_MIN * std::sqrt(2.0f);
      BooleanOptimizerOptions o;
      o.signal_scaling = SignalScaling::rms;
      o.accumulator = type;
      o.learning_rate = 1000.0;
      o.threshold = 1e4;
      BooleanOptimizer opt({{"w", &bits, q.data(), 40}}, o);
      opt.step();
      // Zero-signal elements keep 0, the others are pushed, all finite.
      CHECK(check_finite_accumulators(opt, 0, 2, 40) > 0);
      CHECK(opt.accumulator(0, 0, 1) == 0.0f);
    }
  });
}

// Two kernels with long names (their copies in the statistics allocate), one step done.
struct Model {
  BitMatrix a{5, 70}, b{3, 130};
  std::vector<float> qa = std::vector<float>(5 * 70), qb = std::vector<float>(3 * 130);
  Model() {
    for (std::size_t e = 0; e < qa.size(); ++e) qa[e] = std::sin(0.7f * static_cast<float>(e));
    for (std::size_t e = 0; e < qb.size(); ++e) qb[e] = std::cos(0.3f * static_cast<float>(e));
  }
  std::vector<BooleanParameter> params() {
    return {{"first.kernel.with.a.long.name", &a, qa.data(), 70},
            {"second.kernel.with.a.long.name", &b, qb.data(), 130}};
  }
};

bool same_state(const StateDict& x, const StateDict& y) {
  if (x.size() != y.size()) return false;
  for (const auto& [name, t] : x) {
    const auto it = y.find(name);
    if (it == y.end() || it->second.dtype != t.dtype || it->second.shape != t.shape ||
        it->second.bytes != t.bytes)
      return false;
  }
  return true;
}

TEST_CASE("a Boolean step that fails on an allocation changes nothing",
          "[optimizer][state][alloc]") {
  for (AccumulatorType type : kAllTypes) {
    INFO("accumulator " << accumulator_name(type));
    Model m;
    BooleanOptimizerOptions o;
    o.accumulator = type;
    o.signal_scaling = SignalScaling::rms;
    o.learning_rate = 0.6;
    BooleanOptimizer opt(m.params(), o);
    opt.step();
    bool succeeded = false;
    for (long k = 0; k < 64 && !succeeded; ++k) {
      INFO("allocation " << k << " fails");
      const BitMatrix a0 = m.a, b0 = m.b;
      StateDict before;
      opt.export_state(before, "");
      const BooleanStepStats stats0 = opt.last_stats();
      bool threw = false;
      {
        FailAllocation fail(k);
        try {
          opt.step();
        } catch (const std::bad_alloc&) {
          threw = true;
        }
        succeeded = !threw && !FailAllocation::fired();
      }
      if (!threw) continue;
      StateDict after;
      opt.export_state(after, "");
      CHECK(same_state(before, after));
      CHECK(m.a == a0);
      CHECK(m.b == b0);
      CHECK(opt.step_count() == stats0.step);
      CHECK(opt.last_stats().step == stats0.step);
      CHECK(opt.last_stats().tensors.size() == stats0.tensors.size());
    }
    CHECK(succeeded);
    CHECK(opt.step_count() >= 2);
  }
}

// Sets the F64 scalar `name` of `state` to `value`.
void set_f64(StateDict& state, const std::string& name, double value) {
  state[name] = Tensor::scalar<double>(value);
}

TEST_CASE("BooleanOptimizer import_state: scale, beta and step are checked as they are used",
          "[optimizer][state][numeric]") {
  for (AccumulatorType type : kAllTypes) {
    INFO("accumulator " << accumulator_name(type));
    Model m;
    BooleanOptimizerOptions o;
    o.accumulator = type;
    BooleanOptimizer opt(m.params(), o);
    opt.step();
    StateDict good;
    opt.export_state(good, "");
    const std::string s = "first.kernel.with.a.long.name.scale";
    // Finite and > 0 as a double, but 0 as a float (1e-300), or with an inverse that is 0 as a
    // float (1e300 fails as a float itself), or a float whose inverse overflows (1e-39).
    for (double bad : {1e-300, 1e300, 1e-39, 0.0, -1.0}) {
      INFO("scale " << bad);
      StateDict state = good;
      set_f64(state, s, bad);
      CHECK_THROWS_AS(opt.import_state(state, ""), FormatError);
    }
    for (double bad : {std::nan(""), -0.5, 1.5}) {
      StateDict state = good;
      set_f64(state, "second.kernel.with.a.long.name.beta", bad);
      CHECK_THROWS_AS(opt.import_state(state, ""), FormatError);
    }
    StateDict state = good;
    state["step"] = Tensor::scalar<std::int64_t>(INT64_MAX);
    CHECK_THROWS_AS(opt.import_state(state, ""), FormatError);
    StateDict after;
    opt.export_state(after, "");
    CHECK(same_state(good, after));  // nothing imported

    // The last step count that can grow: one more step, then the step is refused, changing
    // nothing.
    state["step"] = Tensor::scalar<std::int64_t>(INT64_MAX - 1);
    REQUIRE_NOTHROW(opt.import_state(state, ""));
    opt.step();
    CHECK(opt.step_count() == INT64_MAX);
    StateDict last;
    opt.export_state(last, "");
    const BitMatrix a0 = m.a;
    CHECK_THROWS_AS(opt.step(), InvalidArgument);
    StateDict refused;
    opt.export_state(refused, "");
    CHECK(same_state(last, refused));
    CHECK(m.a == a0);
  }
}

TEST_CASE("AdamW: step counts that cannot grow are refused", "[adamw][state][numeric]") {
  std::vector<float> v(4, 1.0f), g(4, 0.5f);
  AdamW opt({{"p", v.data(), g.data(), 4, {2, 2}, false}});
  opt.step();
  StateDict state;
  opt.export_state(state, "");
  state["step"] = Tensor::scalar<std::int64_t>(INT64_MAX);
  CHECK_THROWS_AS(opt.import_state(state, ""), FormatError);
  CHECK(opt.step_count() == 1);
  state["step"] = Tensor::scalar<std::int64_t>(INT64_MAX - 1);
  REQUIRE_NOTHROW(opt.import_state(state, ""));
  opt.step();
  const std::vector<float> v0 = v;
  CHECK_THROWS_AS(opt.step(), InvalidArgument);
  CHECK(v == v0);
  CHECK(opt.step_count() == INT64_MAX);
}

TEST_CASE("AdamW refuses shapes with negative dimensions or wrapping products",
          "[adamw][overflow]") {
  std::vector<float> v(4, 1.0f), g(4, 0.5f);
  // (size_t)-1 * (size_t)-1 == 1: {-1, -1} passed as a shape of one element.
  CHECK_THROWS_AS(AdamW({{"p", v.data(), g.data(), 1, {-1, -1}, false}}), InvalidArgument);
  CHECK_THROWS_AS(AdamW({{"p", v.data(), g.data(), 4, {-2, -2}, false}}), InvalidArgument);
  // 2^32 * 2^32 wraps to 0; times 4 still 0.
  CHECK_THROWS_AS(
      AdamW({{"p", v.data(), g.data(), 4, {INT64_C(1) << 32, INT64_C(1) << 32, 4}, false}}),
      InvalidArgument);
  CHECK_NOTHROW(AdamW({{"p", v.data(), g.data(), 4, {2, 2}, false}}));
}

TEST_CASE("AdamW::add_parameters registers all or nothing", "[adamw][alloc]") {
  std::vector<float> v(300, 1.0f), g(300, 0.5f);
  bool succeeded = false;
  for (long k = 0; k < 32 && !succeeded; ++k) {
    INFO("allocation " << k << " fails");
    AdamW opt({{"first", v.data(), g.data(), 100, {100}, false}});
    std::vector<Parameter> more{{"second", v.data() + 100, g.data() + 100, 100, {100}, false},
                                {"third", v.data() + 200, g.data() + 200, 100, {100}, true}};
    bool threw = false;
    {
      FailAllocation fail(k);
      try {
        opt.add_parameters(more);
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      succeeded = !threw && !FailAllocation::fired();
    }
    CHECK(opt.num_parameters() == (threw ? 1u : 3u));
  }
  CHECK(succeeded);
}

TEST_CASE("BooleanLinear raw-pointer calls refuse strides whose products overflow",
          "[layer][overflow]") {
  constexpr std::size_t kOne = 1;
  auto layer = BooleanLinear<float>::from_dense(random_matrix(8, 100), 2);
  std::vector<float> x(2 * 100, 1.0f), y(2 * 8, 0.0f);
  for (std::size_t ld : {kOne << 62, kOne << 61}) {
    CHECK_THROWS_AS(layer.forward(x.data(), ld, 2, y.data(), 8), InvalidArgument);
    CHECK_THROWS_AS(layer.forward(x.data(), 100, 2, y.data(), ld), InvalidArgument);
    CHECK_THROWS_AS(layer.forward_int8(x.data(), ld, 2, y.data(), 8), InvalidArgument);
    CHECK_THROWS_AS(layer.backward(x.data(), ld, 2, y.data(), 8, nullptr, 0), InvalidArgument);
  }
  CHECK_NOTHROW(layer.forward(x.data(), 100, 2, y.data(), 8));
}

}  // namespace
}  // namespace mbok::test
