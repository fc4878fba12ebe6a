// Imported optimizer state must be valid (finite accumulators and moments, non-negative second
// moments) and is refused as a whole otherwise; options are checked in the type they are used
// in (float), so no option can turn into inf or 0 when narrowed.

#include <mbok/adamw.hpp>
#include <mbok/boolean_optimizer.hpp>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include "../../support.hpp"

namespace mbok::test {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Two kernels with their signals; both optimizers' worth of state is exported from a few steps.
struct Pair {
  BitMatrix a{2, 5}, b{3, 4};
  std::vector<float> qa = std::vector<float>(10, 0.3f), qb = std::vector<float>(12, -0.2f);
  std::vector<BooleanParameter> params() {
    return {{"a", &a, qa.data(), 5}, {"b", &b, qb.data(), 4}};
  }
};

// Overwrites element `e` of tensor `name` with the bytes of `value`.
template <typename T>
void poke(StateDict& dict, const std::string& name, std::size_t e, T value) {
  Tensor& t = dict.at(name);
  REQUIRE((e + 1) * sizeof(T) <= t.bytes.size());
  std::memcpy(t.bytes.data() + e * sizeof(T), &value, sizeof(T));
}

TEST_CASE("BooleanOptimizer refuses non-finite accumulators and changes nothing",
          "[optimizer][state]") {
  const std::pair<AccumulatorType, std::vector<std::pair<std::string, std::uint32_t>>> cases[] = {
      // f32: NaN, +inf, -inf (as bit patterns)
      {AccumulatorType::f32, {{"NaN", 0x7fc00000u}, {"inf", 0x7f800000u}, {"-inf", 0xff800000u}}},
      // f16: NaN, +inf, -inf
      {AccumulatorType::f16, {{"NaN", 0x7e00u}, {"inf", 0x7c00u}, {"-inf", 0xfc00u}}},
      // i8: -128, a code the optimizer never writes
      {AccumulatorType::i8, {{"-128", 0x80u}}},
  };
  for (const auto& [type, values] : cases) {
    for (const auto& [label, pattern] : values) {
      INFO(accumulator_name(type) << " accumulator set to " << label);
      BooleanOptimizerOptions opt;
      opt.accumulator = type;
      Pair source;
      BooleanOptimizer o(source.params(), opt);
      o.step();
      o.step();
      StateDict dict;
      o.export_state(dict, "opt.");
      // Element (1, 2) of the second tensor: everything before it is valid.
      const std::size_t e = 1 * 4 + 2;
      if (type == AccumulatorType::f32)
        poke(dict, "opt.b.accumulator", e, pattern);
      else if (type == AccumulatorType::f16)
        poke(dict, "opt.b.accumulator", e, static_cast<std::uint16_t>(pattern));
      else
        poke(dict, "opt.b.accumulator", e, static_cast<std::uint8_t>(pattern));

      Pair target;
      BooleanOptimizer r(target.params(), opt);
      r.step();  // some state of its own, which must survive the refused import
      StateDict before;
      r.export_state(before, "");
      try {
        r.import_state(dict, "opt.");
        FAIL("import_state accepted a bad accumulator");
      } catch (const FormatError& err) {
        const std::string what = err.what();
        INFO(what);
        CHECK_THAT(what, contains("'opt.b.accumulator'"));
        CHECK_THAT(what, contains("(1, 2)"));
      }
      StateDict after;
      r.export_state(after, "");
      CHECK(r.step_count() == 1);
      for (const auto& [name, t] : before) CHECK(after.at(name).bytes == t.bytes);
    }
  }
}

TEST_CASE("a NaN accumulator would never flip again: the reason it is refused",
          "[optimizer][state]") {
  // The flip test |m| >= threshold is false for NaN forever; show the imported state is the
  // only way in, and that valid state still imports.
  BooleanOptimizerOptions opt;
  opt.accumulator = AccumulatorType::f32;
  Pair p;
  BooleanOptimizer o(p.params(), opt);
  StateDict dict;
  o.export_state(dict, "");
  Pair q;
  BooleanOptimizer r(q.params(), opt);
  CHECK_NOTHROW(r.import_state(dict, ""));
  poke(dict, "a.accumulator", 0, kNaN);
  CHECK_THROWS_AS(r.import_state(dict, ""), FormatError);
}

TEST_CASE("AdamW refuses non-finite moments and negative second moments", "[adamw][state]") {
  const std::pair<const char*, float> cases[] = {{".exp_avg", kNaN},
                                                 {".exp_avg", kInf},
                                                 {".exp_avg_sq", -1e-3f},
                                                 {".exp_avg_sq", kNaN},
                                                 {".exp_avg_sq", kInf}};
  for (const auto& [suffix, value] : cases) {
    INFO(suffix << " = " << value);
    Eigen::VectorXf a = random_matrix(4, 1), ga = random_matrix(4, 1);
    Eigen::MatrixXf b = random_matrix(2, 3), gb = random_matrix(2, 3);
    AdamW o({make_parameter("a", a, ga), make_parameter("b", b, gb)});
    o.step();
    StateDict dict;
    o.export_state(dict, "adam.");
    poke(dict, std::string("adam.b") + suffix, 4, value);

    Eigen::VectorXf a2 = a, ga2 = ga;
    Eigen::MatrixXf b2 = b, gb2 = gb;
    AdamW r({make_parameter("a", a2, ga2), make_parameter("b", b2, gb2)});
    r.step();
    r.step();
    StateDict before;
    r.export_state(before, "");
    try {
      r.import_state(dict, "adam.");
      FAIL("import_state accepted a bad moment");
    } catch (const FormatError& err) {
      INFO(err.what());
      CHECK_THAT(std::string(err.what()), contains(std::string("'adam.b") + suffix + "'"));
      CHECK_THAT(std::string(err.what()), contains("element 4"));
    }
    StateDict after;
    r.export_state(after, "");
    CHECK(r.step_count() == 2);
    for (const auto& [name, t] : before) CHECK(after.at(name).bytes == t.bytes);
  }
  // -0 is a valid second moment.
  Eigen::VectorXf a = random_matrix(4, 1), ga = random_matrix(4, 1);
  AdamW o({make_parameter("a", a, ga)});
  StateDict dict;
  o.export_state(dict, "");
  poke(dict, "a.exp_avg_sq", 1, -0.0f);
  CHECK_NOTHROW(o.import_state(dict, ""));
}

TEST_CASE("BooleanOptimizer options are checked as the floats they become", "[optimizer][errors]") {
  const double huge = 1e39;   // > FLT_MAX: inf as a float
  const double tiny = 1e-46;  // < the smallest float: 0 as a float
  BooleanOptimizerOptions opt;
  opt.accumulator = AccumulatorType::f32;
  auto bad = opt;
  bad.learning_rate = huge;
  CHECK_THROWS_WITH(BooleanOptimizer({}, bad), contains("learning rate"));
  bad = opt;
  bad.learning_rate = tiny;
  CHECK_THROWS_WITH(BooleanOptimizer({}, bad), contains("as a float"));
  bad = opt;
  bad.threshold = tiny;
  CHECK_THROWS_WITH(BooleanOptimizer({}, bad), contains("threshold"));
  bad = opt;
  bad.threshold = huge;
  CHECK_THROWS_AS(BooleanOptimizer({}, bad), InvalidArgument);
  bad = opt;
  bad.accumulator = AccumulatorType::i8;
  bad.threshold = 1e-40;  // a float, but threshold / 64 is not, nor its inverse
  CHECK_THROWS_WITH(BooleanOptimizer({}, bad), contains("i8"));
  // The smallest float threshold works and does not flip weights with a zero signal.
  auto ok = opt;
  ok.threshold = static_cast<double>(std::numeric_limits<float>::denorm_min());
  ok.learning_rate = static_cast<double>(FLT_MAX) / 2;
  Pair p;
  std::fill(p.qa.begin(), p.qa.end(), 0.0f);
  std::fill(p.qb.begin(), p.qb.end(), 0.0f);
  BooleanOptimizer o(p.params(), ok);
  const BitMatrix a0 = p.a;
  o.step();
  CHECK(p.a == a0);
  CHECK(o.last_stats().flips() == 0);
  CHECK_THROWS_AS(o.set_learning_rate(huge), InvalidArgument);
}

TEST_CASE("AdamW options are checked as the floats they become", "[adamw][errors]") {
  Eigen::VectorXf a = Eigen::VectorXf::Ones(3), ga = Eigen::VectorXf::Zero(3);
  AdamW o({make_parameter("a", a, ga)});
  AdamWOptions opt;
  auto bad = opt;
  bad.learning_rate = 1e39;
  CHECK_THROWS_WITH(o.set_options(bad), contains("learning rate"));
  bad = opt;
  bad.eps = 1e-50;  // 0 as a float: 0 / (sqrt(0) + 0) is NaN at the first zero gradient
  CHECK_THROWS_WITH(o.set_options(bad), contains("eps"));
  bad = opt;
  bad.beta2 = 1.0 - 1e-12;  // < 1 as a double, 1 as a float
  CHECK_THROWS_WITH(o.set_options(bad), contains("beta2"));
  bad = opt;
  bad.beta1 = 1.0 - 1e-12;
  CHECK_THROWS_WITH(o.set_options(bad), contains("beta1"));
  bad = opt;
  bad.weight_decay = 1e39;
  CHECK_THROWS_WITH(o.set_options(bad), contains("weight decay"));
  // Zero gradients with the smallest float eps stay finite.
  auto ok = opt;
  ok.eps = static_cast<double>(FLT_MIN);
  o.set_options(ok);
  o.step();
  CHECK(a.allFinite());
}

}  // namespace
}  // namespace mbok::test
