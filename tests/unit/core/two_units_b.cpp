// Second translation unit of the link test (see two_units_a.cpp).
#include <mbok/mbok.hpp>

#include "support.hpp"

namespace mbok::test {
std::size_t popcount_in_unit_b(const BitMatrix& m) { return m.popcount(); }

// Finetunes the student's bits against the teacher's outputs with the Boolean optimizer and
// returns the final output MSE on a fresh batch.
double finetune_in_unit_b(BooleanLinear<float>& student, const BooleanLinear<float>& teacher,
                          int steps) {
  using RowMatrixF = BooleanLinear<float>::RowMatrix;
  BooleanOptimizerOptions options;
  options.learning_rate = 2.0;
  BooleanOptimizer optimizer(student.boolean_parameters(), options);
  RowMatrixF grad;
  for (int step = 0; step < steps; ++step) {
    const RowMatrixF x = random_matrix(32, student.in_features());
    mse(teacher.forward(x), student.forward(x), &grad);
    student.backward(x, grad);
    optimizer.step();
  }
  const RowMatrixF x = random_matrix(64, student.in_features());
  return mse(teacher.forward(x), student.forward(x));
}
}  // namespace mbok::test
