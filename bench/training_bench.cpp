// One training step (forward + backward + optimizer) of a 4096 x 4096 layer with K = 2 and
// t = 256 tokens, the last kernel trainable:
// - mbok: BooleanLinear + BooleanOptimizer (f32, f16, i8 accumulators) + AdamW on the scales;
// - latent baseline: float latent weights for the trainable kernel, sign() in the forward,
//   straight-through backward, Adam on the latent weights (the usual binarization-aware
//   training), on Eigen's dense GEMM.
// Counters: training-state bytes per trainable weight (optimizer state plus latent copy;
// gradients and signals are transient buffers both sides have, and not counted).
#include <benchmark/benchmark.h>

#include <mbok/adamw.hpp>
#include <mbok/boolean_linear.hpp>
#include <mbok/boolean_optimizer.hpp>

#include <Eigen/Core>

#include <cmath>
#include <memory>
#include <random>

namespace {

using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr std::size_t kOut = 4096, kIn = 4096, kTokens = 256, kKernels = 2;

RowMatrixF gaussian(std::size_t rows, std::size_t cols, std::uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 engine(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  RowMatrixF m(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = dist(engine);
  return m;
}

// The shared problem: SVID kernels of a random layer, inputs and regression targets.
struct Problem {
  mbok::MultiKernelWeights<float> weights;
  RowMatrixF x, target;
};
const Problem& problem() {
  static const std::unique_ptr<Problem> p = [] {
    auto out = std::make_unique<Problem>();
    const RowMatrixF w = gaussian(kOut, kIn, 1, 0.02f);
    out->weights = mbok::svid<float>(w, kKernels).weights;
    out->x = gaussian(kTokens, kIn, 2);
    out->target = gaussian(kTokens, kOut, 3, 0.1f);
    return out;
  }();
  return *p;
}

void boolean_step(benchmark::State& state) {
  const auto type = static_cast<mbok::AccumulatorType>(state.range(0));
  const Problem& p = problem();
  mbok::BooleanLinear<float> layer(p.weights);
  mbok::BooleanOptimizerOptions bopt;
  bopt.accumulator = type;
  bopt.learning_rate = 1e-3;
  mbok::BooleanOptimizer boolean_opt(layer.boolean_parameters(), bopt);
  mbok::AdamW adamw(layer.parameters(), mbok::AdamWOptions{2e-5, 0.9, 0.999, 1e-8, 0.0});
  RowMatrixF y(kTokens, kOut), dy(kTokens, kOut), dx(kTokens, kIn);
  for (auto _ : state) {
    layer.forward(p.x, y);
    dy = (y - p.target) * (2.0f / static_cast<float>(y.size()));
    layer.backward(p.x, dy, dx);
    boolean_opt.step();
    adamw.step();
    benchmark::DoNotOptimize(dx.data());
  }
  const double trainable = static_cast<double>(boolean_opt.num_weights());
  state.counters["state_bytes_per_weight"] =
      static_cast<double>(boolean_opt.state_bytes()) / trainable;
  state.counters["flip_rate"] = boolean_opt.last_stats().rate();
  state.counters["tokens_per_s"] = benchmark::Counter(
      static_cast<double>(kTokens), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(mbok::accumulator_name(type)) + " isa=" + mbok::isa_name(layer.isa()));
}

// Binarization-aware training with a latent float copy of the trainable kernel.
void latent_step(benchmark::State& state) {
  const Problem& p = problem();
  const mbok::MultiKernelWeights<float>& w = p.weights;
  const std::size_t last = kKernels - 1;
  // Frozen kernels as one dense float matrix; the trainable one as latent floats whose
  // sign is the kernel (initialised to the SVID scale times the sign).
  RowMatrixF frozen = RowMatrixF::Zero(kOut, kIn);
  for (std::size_t k = 0; k < last; ++k)
    frozen +=
        (w.kernel(k).to_signs().array() * (w.s_out(k) * w.s_in(k).transpose()).array()).matrix();
  const RowMatrixF scale = w.s_out(last) * w.s_in(last).transpose();
  RowMatrixF latent = (w.kernel(last).to_signs().array() * scale.array()).matrix();
  RowMatrixF latent_grad(kOut, kIn), dense(kOut, kIn);
  RowMatrixF adam_m = RowMatrixF::Zero(kOut, kIn), adam_v = RowMatrixF::Zero(kOut, kIn);
  RowMatrixF y(kTokens, kOut), dy(kTokens, kOut), dx(kTokens, kIn);
  const float lr = 2e-5f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  int step = 0;
  for (auto _ : state) {
    ++step;
    dense = frozen + (latent.array().sign() * scale.array()).matrix();  // sign() in the forward
    y.noalias() = p.x * dense.transpose();
    dy = (y - p.target) * (2.0f / static_cast<float>(y.size()));
    dx.noalias() = dy * dense;
    latent_grad.noalias() = dy.transpose() * p.x;  // straight-through: d sign(w)/dw = 1
    latent_grad.array() *= scale.array();
    const float c1 = 1.0f - std::pow(b1, static_cast<float>(step));
    const float c2 = 1.0f - std::pow(b2, static_cast<float>(step));
    adam_m = b1 * adam_m + (1 - b1) * latent_grad;
    adam_v = b2 * adam_v + (1 - b2) * latent_grad.cwiseAbs2();
    latent.array() -= lr * (adam_m.array() / c1) / ((adam_v.array() / c2).sqrt() + eps);
    benchmark::DoNotOptimize(dx.data());
  }
  // Latent copy + two Adam moments, per trainable weight.
  state.counters["state_bytes_per_weight"] = 3.0 * sizeof(float);
  state.counters["tokens_per_s"] = benchmark::Counter(
      static_cast<double>(kTokens), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel("latent fp32 + Adam, Eigen GEMM");
}

BENCHMARK(boolean_step)
    ->Name("training_step/4096x4096/K2/t256/boolean")
    ->Arg(static_cast<int>(mbok::AccumulatorType::f32))
    ->Arg(static_cast<int>(mbok::AccumulatorType::f16))
    ->Arg(static_cast<int>(mbok::AccumulatorType::i8))
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(latent_step)
    ->Name("training_step/4096x4096/K2/t256/latent_adam")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
