// End-to-end: Boolean finetuning recovers corrupted bits, and improves on the data-free
// SVID initialization of a regression task.

#include <mbok/adamw.hpp>
#include <mbok/boolean_linear.hpp>
#include <mbok/boolean_optimizer.hpp>
#include <mbok/losses.hpp>
#include <mbok/svid.hpp>

#include "../../support.hpp"

namespace mbok::test {
namespace {

using RowMatrixF = BooleanLinear<float>::RowMatrix;

double output_mse(const BooleanLinear<float>& student, const BooleanLinear<float>& teacher,
                  const RowMatrixF& x) {
  return mse(teacher.forward(x), student.forward(x));
}

TEST_CASE("Boolean finetuning recovers flipped bits of the last kernel", "[learning][slow]") {
  const std::size_t m = 32, n = 96, t = 32;  // products below Eigen's threading threshold
  for (AccumulatorType type : {AccumulatorType::f32, AccumulatorType::f16, AccumulatorType::i8}) {
    INFO("accumulator " << accumulator_name(type));
    const auto init = svid<float>(Eigen::MatrixXf(random_matrix(m, n)), 2);
    BooleanLinear<float> teacher(init.weights);
    // The student: the teacher with 10% of the last kernel's bits flipped.
    MultiKernelWeights<float> corrupted = init.weights;
    std::vector<std::pair<std::size_t, std::size_t>> flipped;
    std::bernoulli_distribution coin(0.1);
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j)
        if (coin(rng())) {
          corrupted.kernel(1).flip(i, j);
          flipped.emplace_back(i, j);
        }
    REQUIRE(flipped.size() > m * n / 20);
    BooleanLinear<float> student(corrupted);
    const RowMatrixF x_eval = random_matrix(64, n);
    const double gap0 = output_mse(student, teacher, x_eval);
    REQUIRE(gap0 > 0);

    BooleanOptimizerOptions opt;
    opt.accumulator = type;
    opt.learning_rate = 2.0;
    BooleanOptimizer optimizer(student.boolean_parameters(), opt);
    RowMatrixF grad;
    for (int step = 0; step < 40; ++step) {
      const RowMatrixF x = random_matrix(t, n);
      const RowMatrixF y = student.forward(x);
      mse(teacher.forward(x), y, &grad);
      student.backward(x, grad);
      optimizer.step();
    }
    std::size_t recovered = 0;
    for (auto [i, j] : flipped)
      recovered += student.kernel(1).bit(i, j) == teacher.kernel(1).bit(i, j);
    const double gap = output_mse(student, teacher, x_eval);
    INFO("recovered " << recovered << " of " << flipped.size() << ", gap " << gap0 << " -> "
                      << gap);
    CHECK(static_cast<double>(recovered) >= 0.9 * static_cast<double>(flipped.size()));
    CHECK(gap <= 0.1 * gap0);
  }
}

TEST_CASE("Boolean finetuning beats the SVID initialization on correlated inputs",
          "[learning][slow]") {
  // y = W x with inputs that live near a 16-dimensional subspace: the data-free SVID
  // minimises ||W - W_hat||_F elementwise, the output error only counts W_hat's action on
  // that subspace, so flipping bits of the last kernel can do much better.
  const std::size_t m = 24, n = 64, t = 64, rank = 16;
  const Eigen::MatrixXf w = random_matrix(m, n);
  const Eigen::MatrixXf mix = random_matrix(rank, n);
  auto sample = [&](std::size_t rows) {
    RowMatrixF x = random_matrix(rows, rank) * mix + random_matrix(rows, n, 0.05f);
    return x;
  };
  const RowMatrixF x_eval = sample(64);
  const RowMatrixF y_eval = x_eval * w.transpose();
  for (AccumulatorType type : {AccumulatorType::f32, AccumulatorType::f16, AccumulatorType::i8}) {
    INFO("accumulator " << accumulator_name(type));
    auto student = BooleanLinear<float>::from_dense(w, 2);
    const double init_mse = mse(y_eval, student.forward(x_eval));
    BooleanOptimizerOptions opt;
    opt.accumulator = type;
    opt.learning_rate = 0.2;
    BooleanOptimizer optimizer(student.boolean_parameters(), opt);
    RowMatrixF grad;
    for (int step = 0; step < 60; ++step) {
      const RowMatrixF x = sample(t);
      mse(RowMatrixF(x * w.transpose()), student.forward(x), &grad);
      student.backward(x, grad);
      optimizer.step();
    }
    const double final_mse = mse(y_eval, student.forward(x_eval));
    INFO("output MSE " << init_mse << " (SVID) -> " << final_mse);
    CHECK(final_mse < 0.5 * init_mse);
  }
}

}  // namespace
}  // namespace mbok::test
