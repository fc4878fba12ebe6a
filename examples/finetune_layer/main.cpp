// Finetuning one Boolean layer: the shortest path through the library.
//
// A float "teacher" layer y = W x is given (here: random). We build a Boolean "student"
// with K = 2 kernels of one bit per weight plus per-kernel scales, initialized from W by
// successive SVID (data-free: it approximates W itself), then finetune it on the teacher's
// outputs:
//   - the bits with the Boolean optimizer (it accumulates the backward pass's Boolean signal
//     and flips a bit when its accumulator crosses the threshold),
//   - the scales (s_out_k, s_in_k) with AdamW, as any float parameter.
// The inputs live near a low-dimensional subspace (as real activations do), so the output
// error can drop well below what the data-free initialization achieves.
//
// Usage: finetune_layer [steps]   (default 150; prints the loss and the final error, and
// exits with status 1 if finetuning did not improve on the initialization)

#include <mbok/mbok.hpp>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

namespace {

using Layer = mbok::BooleanLinear<float>;
using RowMatrix = Layer::RowMatrix;

constexpr int kOut = 64, kIn = 256, kRank = 24, kTokens = 128, kKernels = 2;

// Standard normal entries from a fixed seed, so every run prints the same numbers.
Eigen::MatrixXf gaussian(int rows, int cols, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Eigen::MatrixXf m(rows, cols);
  for (int j = 0; j < cols; ++j)
    for (int i = 0; i < rows; ++i) m(i, j) = normal(rng);
  return m;
}

// ||a - b||_F / ||b||_F
double relative_error(const RowMatrix& a, const RowMatrix& b) {
  return static_cast<double>((a - b).norm() / b.norm());
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 150;
  if (steps <= 0) {
    std::fprintf(stderr, "usage: %s [steps > 0]\n", argv[0]);
    return 2;
  }
  std::mt19937 rng(2024);

  // The teacher: a float layer (out x in), and a source of inputs near a rank-kRank subspace.
  const Eigen::MatrixXf w = gaussian(kOut, kIn, rng) / std::sqrt(static_cast<float>(kIn));
  const Eigen::MatrixXf basis = gaussian(kRank, kIn, rng);
  auto sample = [&](int tokens) {
    RowMatrix x = gaussian(tokens, kRank, rng) * basis + 0.05f * gaussian(tokens, kIn, rng);
    return x;
  };
  auto teacher = [&](const RowMatrix& x) {
    RowMatrix y = x * w.transpose();
    return y;
  };

  // The student: K Boolean kernels with scales, from the teacher's weight by SVID.
  Layer student = Layer::from_dense(w, kKernels);
  std::printf("student: %d x %d, K = %d, %.2f bits per weight, ISA %s\n", kOut, kIn, kKernels,
              student.weights().bits_per_weight(), mbok::isa_name(student.isa()));
  std::printf("weight relative error after SVID: %.4f\n", student.weights().relative_error(w));

  const RowMatrix x_eval = sample(512);
  const RowMatrix y_eval = teacher(x_eval);
  const double error_init = relative_error(student.forward(x_eval), y_eval);
  std::printf("output relative error after SVID: %.4f\n\n", error_init);

  // Two optimizers, one per kind of parameter.
  mbok::BooleanOptimizerOptions bits_options;
  bits_options.signal_scaling = mbok::SignalScaling::rms;  // eta in units of the signal RMS
  bits_options.learning_rate = 0.1;
  bits_options.accumulator = mbok::AccumulatorType::f16;  // 2 bytes of state per weight
  mbok::BooleanOptimizer bits_optimizer(student.boolean_parameters(), bits_options);
  mbok::AdamWOptions scales_options;
  scales_options.learning_rate = 1e-3;
  mbok::AdamW scales_optimizer(student.parameters(), scales_options);

  // The training loop: forward, loss and its gradient, backward, one step of each optimizer.
  RowMatrix grad;
  double first_loss = 0, last_loss = 0;
  std::size_t flips = 0;
  for (int step = 1; step <= steps; ++step) {
    const RowMatrix x = sample(kTokens);
    const RowMatrix y = student.forward(x);
    const double loss = mbok::mse(teacher(x), y, &grad);  // grad = dLoss/dy
    student.backward(x, grad);  // gradients of the scales, Boolean signal of the bits
    bits_optimizer.step();
    scales_optimizer.step();
    flips += bits_optimizer.last_stats().flips();
    if (step == 1) first_loss = loss;
    last_loss = loss;
    if (step == 1 || step % (steps >= 10 ? steps / 10 : 1) == 0)
      std::printf("step %4d  loss %.5f  flips so far %zu\n", step, loss, flips);
  }

  const double error_final = relative_error(student.forward(x_eval), y_eval);
  std::printf("\nloss %.5f -> %.5f\n", first_loss, last_loss);
  std::printf("output relative error: %.4f (SVID) -> %.4f (finetuned), %zu flips in all\n",
              error_init, error_final, flips);
  return error_final < error_init ? 0 : 1;
}
