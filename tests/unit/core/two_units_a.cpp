// With two_units_b.cpp: two translation units that include the whole library through the
// umbrella header link into one binary (no ODR clashes, no duplicate symbols), and the
// umbrella alone is enough to initialize, run and train a layer.
#include <mbok/mbok.hpp>

#include "support.hpp"

namespace mbok::test {
std::size_t popcount_in_unit_b(const BitMatrix& m);
double finetune_in_unit_b(BooleanLinear<float>& student, const BooleanLinear<float>& teacher,
                          int steps);
}  // namespace mbok::test

TEST_CASE("two translation units including the library link together", "[link]") {
  const mbok::BitMatrix m = mbok::test::random_bits(3, 77);
  CHECK(mbok::test::popcount_in_unit_b(m) == m.popcount());
  CHECK(mbok::ProductSet().isa() == mbok::active_isa());
}

TEST_CASE("the umbrella header initializes and trains a BooleanLinear", "[link]") {
  using RowMatrixF = mbok::BooleanLinear<float>::RowMatrix;
  const std::size_t m = 16, n = 64;
  const auto init = mbok::svid<float>(Eigen::MatrixXf(mbok::test::random_matrix(m, n)), 2);
  const mbok::BooleanLinear<float> teacher(init.weights);
  // The student: the teacher with every 7th bit of the last kernel flipped.
  mbok::MultiKernelWeights<float> corrupted = init.weights;
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = i % 7; j < n; j += 7) corrupted.kernel(1).flip(i, j);
  mbok::BooleanLinear<float> student(corrupted);

  const RowMatrixF x = mbok::test::random_matrix(64, n);
  const double before = mbok::mse(teacher.forward(x), student.forward(x));
  REQUIRE(before > 0);
  const double after = mbok::test::finetune_in_unit_b(student, teacher, 30);
  INFO("output mse " << before << " -> " << after);
  CHECK(after < 0.5 * before);
}
