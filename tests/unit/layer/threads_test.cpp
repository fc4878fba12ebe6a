// BooleanOptimizer::step on one thread and on several: the same flips, accumulators, betas and
// statistics, for every accumulator type, on tensors whose rows parallel_for really splits
// (observed by test::one_and_many). The step is elementwise and its flip count is a sum of
// integers, so the thread count cannot change any result (the i8 rounding noise is keyed by
// element, not by thread).
#include <mbok/bit_matrix.hpp>
#include <mbok/boolean_optimizer.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "support.hpp"
#include "threads_support.hpp"

using namespace mbok;

namespace {

using SignalMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Tensor2 {
  std::size_t rows, cols;
};

// What one run leaves behind: every tensor's bits and the exported state, and the flips of
// every step.
struct Outcome {
  std::vector<BitMatrix> bits;
  StateDict state;
  std::vector<std::size_t> flips;
};

Outcome run(const std::vector<Tensor2>& shapes, AccumulatorType type, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<BitMatrix> bits;
  std::vector<SignalMatrix> signals;
  for (const Tensor2& s : shapes) {
    Eigen::MatrixXf init(static_cast<Eigen::Index>(s.rows), static_cast<Eigen::Index>(s.cols));
    for (Eigen::Index i = 0; i < init.size(); ++i) init.data()[i] = dist(gen);
    bits.push_back(BitMatrix::pack(init));
    signals.emplace_back(static_cast<Eigen::Index>(s.rows), static_cast<Eigen::Index>(s.cols) + 3);
  }
  std::vector<BooleanParameter> params;
  for (std::size_t p = 0; p < shapes.size(); ++p)
    params.push_back({"w" + std::to_string(p), &bits[p], signals[p].data(),
                      static_cast<std::size_t>(signals[p].cols())});
  BooleanOptimizerOptions options;
  options.accumulator = type;
  options.threshold = 1.5;
  BooleanOptimizer opt(std::move(params), options);
  Outcome out;
  for (int step = 0; step < 4; ++step) {
    for (auto& q : signals)
      for (Eigen::Index i = 0; i < q.size(); ++i) q.data()[i] = dist(gen);
    opt.step();
    out.flips.push_back(opt.last_stats().flips());
  }
  opt.export_state(out.state, "opt.");
  out.bits = std::move(bits);
  return out;
}

}  // namespace

TEST_CASE("BooleanOptimizer::step: one thread and several give the same state",
          "[threads][optimizer]") {
  MBOK_REQUIRE_THREADS();
  // 64 columns: 512 rows per chunk; 300 columns (not a multiple of 64): 109 rows per chunk.
  const std::vector<Tensor2> shapes = {{2100, 64}, {500, 300}, {7, 33}};
  for (AccumulatorType type : {AccumulatorType::f32, AccumulatorType::f16, AccumulatorType::i8}) {
    INFO("accumulator " << accumulator_name(type));
    const auto [one, many] = test::one_and_many([&] { return run(shapes, type, 99); });
    REQUIRE(one.flips == many.flips);
    REQUIRE(one.flips.back() > 0);  // the steps did flip bits
    for (std::size_t p = 0; p < shapes.size(); ++p) REQUIRE(one.bits[p] == many.bits[p]);
    REQUIRE(one.state.size() == many.state.size());
    for (const auto& [name, tensor] : one.state) {
      INFO("state " << name);
      REQUIRE(many.state.count(name) == 1);
      REQUIRE(tensor.bytes == many.state.at(name).bytes);
    }
  }
}
