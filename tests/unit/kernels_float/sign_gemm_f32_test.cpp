// The float products of every ISA available here (sign_gemm, its accumulate form, and the
// transposed product of the backward pass) against the naive references in tests/reference.
// Error bounds (tests/float_bounds.hpp, which derives them from how the kernels sum):
// gamma(3n - 2) sum |x_l| for a product of n terms, gamma(3n) for the accumulate form.
// Integer-valued inputs are exact in every summation order and compare with ==.
#include <mbok/products.hpp>

#include <cmath>
#include <cstddef>
#include <iterator>
#include <optional>
#include <random>
#include <vector>

#include "float_bounds.hpp"
#include "float_data.hpp"
#include "reference/naive.hpp"
#include "support.hpp"

using namespace mbok;

namespace {

const std::size_t kColsSmall[] = {1, 63, 64, 65, 127, 128, 511, 512, 513};
const std::size_t kTokens[] = {1, 2, 3, 7, 8, 17, 64, 65};
const std::size_t kOutRows[] = {1, 2, 3, 7, 8, 17, 64, 65};

struct Shape {
  std::size_t t, m, n;
};

// Every small n with a spread of (t, m): k walks every token count (64 and 65 included, so the
// register tiles see every remainder) and, shifted by one per round, the output counts up to
// 17: 27 distinct (t, m) pairs, quick enough for an emulator. The big shapes run in the
// [slow] cases.
std::vector<Shape> quick_shapes() {
  std::vector<Shape> out;
  std::size_t k = 0;
  for (std::size_t n : kColsSmall)
    for (std::size_t a = 0; a < 3; ++a, ++k)
      out.push_back({kTokens[k % 8], kOutRows[(k + k / 8) % 6], n});
  out.push_back({1, 65, 997});
  out.push_back({7, 8, 4099});
  out.push_back({2, 17, 4099});
  return out;
}

std::vector<Shape> slow_shapes() {
  return {{64, 65, 513}, {65, 64, 997}, {17, 7, 997}, {65, 3, 4099}, {1, 64, 4099}, {8, 65, 4099}};
}

double abs_dot(const float* x, std::size_t n) {
  double s = 0;
  for (std::size_t l = 0; l < n; ++l) s += std::fabs(static_cast<double>(x[l]));
  return s;
}

// The value kind of case `index` (every kind in turn), or `only` when given.
test::Values values_of(std::size_t index, std::optional<test::Values> only) {
  return only ? *only : test::kValueKinds[(index / 5) % std::size(test::kValueKinds)];
}

// Runs every ISA on each shape; the reference is computed once per shape.
void check_sign_gemm(const std::vector<Shape>& list, std::optional<test::Values> only = {}) {
  std::size_t case_index = 0;
  for (const Shape& s : list) {
    const test::Pattern p = test::kPatterns[case_index % 5];
    const test::Values v = values_of(case_index, only);
    ++case_index;
    INFO("t = " << s.t << ", m = " << s.m << ", n = " << s.n << ", pattern " << static_cast<int>(p)
                << ", values " << static_cast<int>(v));
    const BitMatrix w = test::pattern_bits(s.m, s.n, p);
    const std::size_t ldx = s.n + 3, ldy = s.m + 2;
    const std::vector<float> x = test::activations(s.t, s.n, ldx, v);
    const auto ref = test::naive_sign_gemm(x.data(), ldx, s.t, w);
    test::for_each_isa([&](Isa isa) {
      const ProductSet k;
      REQUIRE(k.isa() == isa);
      std::vector<float> y(s.t * ldy, -5.0f);
      k.sign_gemm(x.data(), ldx, s.t, w, y.data(), ldy);
      for (std::size_t i = 0; i < s.t; ++i) {
        const double tol = v == test::Values::integers
                               ? 0.0
                               : test::product_bound(abs_dot(x.data() + i * ldx, s.n), s.n);
        for (std::size_t j = 0; j < s.m; ++j)
          REQUIRE(std::fabs(y[i * ldy + j] - ref[i * s.m + j]) <= tol);
        for (std::size_t j = s.m; j < ldy; ++j) REQUIRE(y[i * ldy + j] == -5.0f);
      }
    });
  }
}

}  // namespace

TEST_CASE("sign_gemm (float) matches the reference on every shape, pattern and value kind",
          "[kernels_float][sign_gemm]") {
  check_sign_gemm(quick_shapes());
}

TEST_CASE("sign_gemm (float) matches the reference on large shapes",
          "[kernels_float][sign_gemm][slow]") {
  check_sign_gemm(slow_shapes());
}

TEST_CASE("sign_gemm (float) is exact on integer-valued inputs",
          "[kernels_float][sign_gemm][exact]") {
  check_sign_gemm(quick_shapes(), test::Values::integers);
}

TEST_CASE("sign_gemm (float) on strided bit views and row ranges", "[kernels_float][sign_gemm]") {
  const BitMatrix dense = test::random_bits(37, 300);
  const test::StridedBits strided(dense, 8);
  const BitMatrixView rows = strided.view.middle_rows(5, 29);
  const std::size_t t = 9, ldx = 301, ldy = 40;
  const std::vector<float> x = test::activations(t, 300, ldx, test::Values::normal);
  const auto ref = test::naive_sign_gemm(x.data(), ldx, t, rows);
  test::for_each_isa([&](Isa isa) {
    const ProductSet k;
    REQUIRE(k.isa() == isa);
    std::vector<float> y(t * ldy, 7.0f);
    k.sign_gemm_range(x.data(), ldx, t, rows, y.data(), ldy, 3, 26);
    for (std::size_t i = 0; i < t; ++i) {
      const double tol = test::product_bound(abs_dot(x.data() + i * ldx, 300), 300);
      for (std::size_t j = 0; j < ldy; ++j) {
        if (j >= 3 && j < 26)
          REQUIRE(std::fabs(y[i * ldy + j] - ref[i * 29 + j]) <= tol);
        else
          REQUIRE(y[i * ldy + j] == 7.0f);
      }
    }
  });
}

namespace {
// Integer values: x, s_out (in [-2, 2]) and Y before (in [-1000, 1000]) whole numbers, so
// |Y| < 2 * 1000 * 4099 + 1000 < 2^24 and every result is exact.
Eigen::MatrixXf integer_matrix(std::size_t rows, std::size_t cols, int max) {
  std::uniform_int_distribution<int> ints(-max, max);
  Eigen::MatrixXf m(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) m(i, j) = static_cast<float>(ints(test::rng()));
  return m;
}

void check_acc(const std::vector<Shape>& list, bool integers = false) {
  for (const Shape& s : list) {
    INFO("t = " << s.t << ", m = " << s.m << ", n = " << s.n << (integers ? ", integers" : ""));
    const BitMatrix w = test::random_bits(s.m, s.n);
    const std::size_t ldx = s.n + 1, ldy = s.m + 3;
    const std::vector<float> x =
        test::activations(s.t, s.n, ldx, integers ? test::Values::integers : test::Values::normal);
    const Eigen::MatrixXf s_out =
        integers ? integer_matrix(s.m, 1, 2) : test::random_matrix(s.m, 1);
    const Eigen::MatrixXf y0 =
        integers ? integer_matrix(s.t, ldy, 1000) : test::random_matrix(s.t, ldy);
    const auto ref = test::naive_sign_gemm(x.data(), ldx, s.t, w);
    const std::size_t j0 = s.m / 3, j1 = s.m;
    test::for_each_isa([&](Isa isa) {
      const ProductSet kernels(isa);
      std::vector<float> y(s.t * ldy);
      for (std::size_t i = 0; i < s.t; ++i)
        for (std::size_t j = 0; j < ldy; ++j)
          y[i * ldy + j] = y0(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j));
      kernels.sign_gemm_acc_range(x.data(), ldx, s.t, w, s_out.data(), y.data(), ldy, j0, j1);
      for (std::size_t i = 0; i < s.t; ++i) {
        const double row_abs = abs_dot(x.data() + i * ldx, s.n);
        for (std::size_t j = 0; j < ldy; ++j) {
          const double before = y0(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j));
          if (j >= j0 && j < j1) {
            const double so = s_out(static_cast<Eigen::Index>(j), 0);
            const double expect = before + so * ref[i * s.m + j];
            if (integers)
              REQUIRE(y[i * ldy + j] == expect);
            else
              REQUIRE(std::fabs(y[i * ldy + j] - expect) <=
                      test::accumulate_bound(std::fabs(so) * row_abs + std::fabs(before), s.n));
          } else {
            REQUIRE(y[i * ldy + j] == static_cast<float>(before));
          }
        }
      }
    });
  }
}

void check_transposed(const std::vector<Shape>& list, std::optional<test::Values> only = {}) {
  std::size_t case_index = 0;
  for (const Shape& s : list) {
    const test::Pattern p = test::kPatterns[case_index % 5];
    const test::Values v = values_of(case_index, only);
    ++case_index;
    // Here m is the summation length and n the output width.
    INFO("t = " << s.t << ", m = " << s.m << ", n = " << s.n << ", pattern " << static_cast<int>(p)
                << ", values " << static_cast<int>(v));
    const BitMatrix w = test::pattern_bits(s.m, s.n, p);
    const test::StridedBits strided(w, 8);
    const std::size_t ldz = s.m + 1, lddx = s.n + 5;
    const std::vector<float> z = test::activations(s.t, s.m, ldz, v);
    const auto ref = test::naive_sign_gemm_transposed(z.data(), ldz, s.t, w);
    test::for_each_isa([&](Isa isa) {
      const ProductSet k;
      REQUIRE(k.isa() == isa);
      for (int variant = 0; variant < 2; ++variant) {
        std::vector<float> dx(s.t * lddx, 123.0f);
        // variant 0: whole matrix on the dense view; 1: a range [64, n - 1) on the strided view
        std::size_t l0 = 0, l1 = s.n;
        if (variant == 0) {
          k.sign_gemm_transposed(z.data(), ldz, s.t, w, dx.data(), lddx);
        } else {
          l0 = s.n > 64 ? 64 : 0;
          l1 = s.n > 1 ? s.n - 1 : s.n;
          k.sign_gemm_transposed_range(z.data(), ldz, s.t, strided.view, dx.data(), lddx, l0, l1);
        }
        for (std::size_t i = 0; i < s.t; ++i) {
          const double tol = v == test::Values::integers
                                 ? 0.0
                                 : test::product_bound(abs_dot(z.data() + i * ldz, s.m), s.m);
          for (std::size_t l = 0; l < lddx; ++l) {
            if (l >= l0 && l < l1)
              REQUIRE(std::fabs(dx[i * lddx + l] - ref[i * s.n + l]) <= tol);
            else
              REQUIRE(dx[i * lddx + l] == 123.0f);
          }
        }
      }
    });
  }
}
}  // namespace

TEST_CASE("sign_gemm_acc_f32 adds s_out times the product to Y", "[kernels_float][sign_gemm]") {
  check_acc(quick_shapes());
}

TEST_CASE("sign_gemm_acc_range rejects bad arguments by name", "[kernels_float][sign_gemm]") {
  const BitMatrix w = test::random_bits(5, 70);
  std::vector<float> x(2 * 70), s_out(5, 1.0f), y(2 * 5);
  const ProductSet kernels;
  CHECK_THROWS_WITH(
      kernels.sign_gemm_acc_range(x.data(), 69, 2, w, s_out.data(), y.data(), 5, 0, 5),
      test::contains("sign_gemm_acc: ldx"));
  CHECK_THROWS_WITH(
      kernels.sign_gemm_acc_range(x.data(), 70, 2, w, s_out.data(), y.data(), 5, 0, 6),
      test::contains("sign_gemm_acc"));
  CHECK_THROWS_WITH(kernels.sign_gemm_acc_range(x.data(), 70, 2, w, nullptr, y.data(), 5, 0, 5),
                    test::contains("null s_out"));
}

TEST_CASE("sign_gemm_acc_f32 on large shapes", "[kernels_float][sign_gemm][slow]") {
  check_acc(slow_shapes());
}

TEST_CASE("sign_gemm_transposed (float) matches the reference, ranges and strides included",
          "[kernels_float][transposed]") {
  check_transposed(quick_shapes());
}

TEST_CASE("sign_gemm_transposed (float) on large shapes", "[kernels_float][transposed][slow]") {
  check_transposed(slow_shapes());
}

TEST_CASE("sign_gemm_acc_f32 and sign_gemm_transposed are exact on integer-valued inputs",
          "[kernels_float][sign_gemm][transposed][exact]") {
  check_acc(quick_shapes(), true);
  check_transposed(quick_shapes(), test::Values::integers);
}
