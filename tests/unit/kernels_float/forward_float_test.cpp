// The fused multi-kernel forward (forward_float.hpp) on every ISA available here, against the
// naive reference in tests/reference/naive_forward.hpp. Error bound (tests/float_bounds.hpp,
// derived from how the kernels sum): gamma(3n + K + 1) sum_k |s_out_k[j]| sum_l |x_l s_in_k[l]|
// plus a subnormal floor. Integer-valued inputs and scales are exact and compare with ==.
#include <mbok/forward_float.hpp>

#include <cmath>
#include <cstddef>
#include <iterator>
#include <optional>
#include <random>
#include <vector>

#include "float_bounds.hpp"
#include "float_data.hpp"
#include "reference/naive_forward.hpp"
#include "support.hpp"

using namespace mbok;

namespace {

// Whole numbers in [-max, max].
Eigen::VectorXf integer_vector(std::size_t size, int max) {
  std::uniform_int_distribution<int> ints(-max, max);
  Eigen::VectorXf v(static_cast<Eigen::Index>(size));
  for (Eigen::Index i = 0; i < v.size(); ++i) v(i) = static_cast<float>(ints(test::rng()));
  return v;
}

// With `integers`, s_in and s_out are whole numbers in [-2, 2]: with activations in
// [-100, 100], |Y| <= K 2 (100 2 n) < 2^24 for K <= 5 and n <= 4099, so every result is exact.
MultiKernelWeights<float> random_weights(std::size_t m, std::size_t n, std::size_t kernels,
                                         test::Pattern pattern = test::Pattern::random,
                                         bool integers = false) {
  MultiKernelWeights<float> w(m, n);
  for (std::size_t k = 0; k < kernels; ++k) {
    // Scales of both signs and a spread of magnitudes: the forward must not assume s >= 0.
    Eigen::VectorXf s_out = integers ? integer_vector(m, 2) : test::random_matrix(m, 1).col(0);
    Eigen::VectorXf s_in = integers ? integer_vector(n, 2) : test::random_matrix(n, 1, 0.5f).col(0);
    w.add_kernel(k == 0 ? test::pattern_bits(m, n, pattern) : test::random_bits(m, n),
                 std::move(s_out), std::move(s_in));
  }
  return w;
}

// Checks y (t x m, stride ldy) against the reference on columns [j0, j1) and that every
// other element still holds `untouched`.
// With `exact`, the columns in range must equal the reference.
void check_forward(const std::vector<double>& ref, const std::vector<double>& bound, std::size_t t,
                   std::size_t m, std::size_t n, std::size_t kernels, const std::vector<float>& y,
                   std::size_t ldy, std::size_t j0, std::size_t j1, float untouched,
                   bool exact = false) {
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < ldy; ++j) {
      INFO("token " << i << ", output " << j);
      if (j >= j0 && j < j1)
        REQUIRE(std::fabs(y[i * ldy + j] - ref[i * m + j]) <=
                (exact ? 0.0 : test::forward_bound(bound[i * m + j], n, kernels)));
      else
        REQUIRE(y[i * ldy + j] == untouched);
    }
}

void check_forward(const MultiKernelWeights<float>& w, const std::vector<float>& x, std::size_t ldx,
                   std::size_t t, const std::vector<float>& y, std::size_t ldy, std::size_t j0,
                   std::size_t j1, float untouched) {
  std::vector<double> bound;
  const auto ref = test::naive_multi_kernel_forward(w, x.data(), ldx, t, &bound);
  check_forward(ref, bound, t, w.out_features(), w.in_features(), w.num_kernels(), y, ldy, j0, j1,
                untouched);
}

struct Case {
  std::size_t t, m, n, kernels;
};

}  // namespace

namespace {

// Runs every ISA on each case; the reference is computed once per case. Value kinds take
// turns, or `only` when given; integer values come with integer scales and must be exact.
void check_cases(const std::vector<Case>& cases, std::optional<test::Values> only = {}) {
  std::size_t index = 0;
  for (const Case& s : cases) {
    const test::Pattern p = test::kPatterns[index % 5];
    const test::Values v =
        only ? *only : test::kValueKinds[(index / 5) % std::size(test::kValueKinds)];
    const bool integers = v == test::Values::integers;
    ++index;
    INFO("t = " << s.t << ", m = " << s.m << ", n = " << s.n << ", K = " << s.kernels
                << ", pattern " << static_cast<int>(p) << ", values " << static_cast<int>(v));
    const MultiKernelWeights<float> w = random_weights(s.m, s.n, s.kernels, p, integers);
    const std::size_t ldx = s.n + 2, ldy = s.m + 1;
    const std::vector<float> x = test::activations(s.t, s.n, ldx, v, 100);
    std::vector<double> bound;
    const auto ref = test::naive_multi_kernel_forward(w, x.data(), ldx, s.t, &bound);
    test::for_each_isa([&](Isa isa) {
      const ProductSet kernels;
      REQUIRE(kernels.isa() == isa);
      std::vector<float> y(s.t * ldy, -3.0f);
      multi_kernel_forward(w, x.data(), ldx, s.t, y.data(), ldy, kernels);
      check_forward(ref, bound, s.t, s.m, s.n, s.kernels, y, ldy, 0, s.m, -3.0f, integers);
    });
  }
}

// Every n with a spread of (t, m, K): c walks every token count and, shifted by one per
// round, every output count, so the 27 cases hold 27 distinct (t, m) pairs.
std::vector<Case> quick_cases() {
  const std::size_t ns[] = {1, 63, 64, 65, 127, 128, 511, 512, 513};
  const std::size_t ts[] = {1, 2, 3, 7, 8, 17};
  const std::size_t ms[] = {1, 2, 3, 7, 8, 17};
  const std::size_t ks[] = {1, 2, 3, 5};
  std::vector<Case> cases;
  std::size_t c = 0;
  for (std::size_t n : ns)
    for (std::size_t a = 0; a < 3; ++a, ++c)
      cases.push_back({ts[c % 6], ms[(c + c / 6 + 2) % 6], n, ks[c % 4]});
  cases.push_back({1, 64, 997, 2});
  cases.push_back({1, 65, 4099, 1});
  cases.push_back({8, 7, 4099, 2});
  cases.push_back({66, 3, 200, 2});  // more tokens than one scaled block
  return cases;
}

}  // namespace

TEST_CASE("multi_kernel_forward matches the reference for K = 1, 2, 3, 5",
          "[kernels_float][forward]") {
  check_cases(quick_cases());
}

TEST_CASE("multi_kernel_forward is exact on integer-valued inputs and scales",
          "[kernels_float][forward][exact]") {
  check_cases(quick_cases(), test::Values::integers);
}

// Both algorithms on every ISA, whichever `automatic` would pick: the sign products and the
// weight rebuilt panel by panel (the scalar table's panels included), on edge shapes.
TEST_CASE("multi_kernel_forward by sign products and by weight panels",
          "[kernels_float][forward]") {
  const Case cases[] = {
      {1, 1, 1, 1}, {1, 33, 65, 2}, {7, 17, 130, 3}, {70, 40, 63, 1}, {9, 65, 511, 2}};
  for (const Case& s : cases) {
    INFO("t = " << s.t << ", m = " << s.m << ", n = " << s.n << ", K = " << s.kernels);
    const MultiKernelWeights<float> w = random_weights(s.m, s.n, s.kernels);
    const std::size_t ldx = s.n + 2, ldy = s.m + 1;
    const std::vector<float> x = test::activations(s.t, s.n, ldx, test::Values::normal, 100);
    test::for_each_isa([&](Isa) {
      const ProductSet kernels;
      for (FloatAlgorithm a : {FloatAlgorithm::sign_products, FloatAlgorithm::weight_panels}) {
        INFO("algorithm " << static_cast<int>(a));
        std::vector<float> y(s.t * ldy, -3.0f);
        multi_kernel_forward(w, x.data(), ldx, s.t, y.data(), ldy, kernels, a);
        check_forward(w, x, ldx, s.t, y, ldy, 0, s.m, -3.0f);
      }
    });
  }
}

TEST_CASE("multi_kernel_forward on large shapes", "[kernels_float][forward][slow]") {
  check_cases({{64, 65, 513, 3},
               {17, 65, 997, 3},
               {65, 64, 997, 1},
               {8, 17, 4099, 2},
               {65, 2, 4099, 5},
               {130, 9, 200, 2}});
}

TEST_CASE("multi_kernel_forward_range writes only its rows", "[kernels_float][forward]") {
  const MultiKernelWeights<float> w = random_weights(70, 300, 3);
  const std::size_t t = 5, ldx = 300, ldy = 72;
  const std::vector<float> x = test::activations(t, 300, ldx, test::Values::normal);
  test::for_each_isa([&](Isa isa) {
    const ProductSet kernels;
    REQUIRE(kernels.isa() == isa);
    for (auto [j0, j1] :
         {std::pair<std::size_t, std::size_t>{0, 70}, {13, 51}, {69, 70}, {20, 20}}) {
      INFO("rows [" << j0 << ", " << j1 << ")");
      std::vector<float> y(t * ldy, 9.0f);
      multi_kernel_forward_range(w, x.data(), ldx, t, y.data(), ldy, j0, j1, kernels);
      check_forward(w, x, ldx, t, y, ldy, j0, j1, 9.0f);
    }
  });
}

TEST_CASE("multi_kernel_forward on Eigen matrices and with no kernels",
          "[kernels_float][forward]") {
  const MultiKernelWeights<float> w = random_weights(33, 129, 2);
  const RowMajorMatrixXf x = test::random_matrix(4, 129);
  RowMajorMatrixXf y(4, 33);
  multi_kernel_forward(w, x, y);
  const std::vector<float> xv(x.data(), x.data() + x.size());
  const std::vector<float> yv(y.data(), y.data() + y.size());
  check_forward(w, xv, 129, 4, yv, 33, 0, 33, 0.0f);

  const MultiKernelWeights<float> empty(33, 129);
  RowMajorMatrixXf y0 = RowMajorMatrixXf::Constant(4, 33, 5.0f);
  multi_kernel_forward(empty, x, y0);
  CHECK(y0.isZero(0.0f));
}

TEST_CASE("multi_kernel_forward errors name the operand", "[kernels_float][forward][errors]") {
  const MultiKernelWeights<float> w = random_weights(10, 20, 1);
  std::vector<float> x(40), y(40);
  CHECK_THROWS_WITH(multi_kernel_forward(w, x.data(), 19, 2, y.data(), 10),
                    test::contains("ldx 19 < input features 20"));
  CHECK_THROWS_WITH(multi_kernel_forward(w, x.data(), 20, 2, y.data(), 9),
                    test::contains("ldy 9 < output features 10"));
  CHECK_THROWS_AS(multi_kernel_forward(w, nullptr, 20, 2, y.data(), 10), InvalidArgument);
  CHECK_THROWS_WITH(multi_kernel_forward_range(w, x.data(), 20, 2, y.data(), 10, 4, 11),
                    test::contains("range [4, 11) out of [0, 10)"));
  const RowMajorMatrixXf xe = RowMajorMatrixXf::Zero(2, 21);
  RowMajorMatrixXf ye(2, 10);
  CHECK_THROWS_WITH(multi_kernel_forward(w, xe, ye),
                    test::contains("X has 21 columns, expected 20"));
  const RowMajorMatrixXf xf = RowMajorMatrixXf::Zero(2, 20);
  RowMajorMatrixXf yf(3, 10);
  CHECK_THROWS_WITH(multi_kernel_forward(w, xf, yf),
                    test::contains("Y is 3 x 10, expected 2 x 10"));
}
