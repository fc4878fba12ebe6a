// Int8Matrix: the quantizer's contract (|w - scale q| <= scale / 2, zero rows, bad input), and
// the dense int8 x float product on every ISA available here against a double-precision sum.
// Bound: each of the n products q_l x_l and the running sums round once per step (an FMA
// rounds once), and the scale once more: |y' - y| <= gamma(n + 1) s sum |q_l x_l|.
#include <mbok/int8_matrix.hpp>
#include <mbok/products.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "float_bounds.hpp"
#include "support.hpp"

using namespace mbok;

namespace {

std::vector<float> random_floats(std::size_t count, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(count);
  for (float& f : v) f = dist(test::rng());
  return v;
}

}  // namespace

TEST_CASE("Int8Matrix quantizes each row within half a step", "[int8_matrix]") {
  const std::size_t rows = 7, cols = 131, ld = 140;
  std::vector<float> w = random_floats(rows * ld, 0.3f);
  for (std::size_t l = 0; l < ld; ++l) w[3 * ld + l] = 0.0f;  // a zero row
  w[5 * ld + 17] = 40.0f;                                     // an outlier sets its row's scale
  const Int8Matrix m = Int8Matrix::quantize(w.data(), rows, cols, ld);
  REQUIRE(m.rows() == rows);
  REQUIRE(m.cols() == cols);
  CHECK(m.bytes() == rows * cols + rows * sizeof(float));
  CHECK(m.scales()[3] == 0.0f);
  CHECK(m.scales()[5] == 40.0f / 127.0f);
  CHECK(m.data()[5 * m.stride() + 17] == 127);
  std::vector<float> back(rows * cols);
  m.dequantize_rows(0, rows, back.data(), cols);
  for (std::size_t j = 0; j < rows; ++j)
    for (std::size_t l = 0; l < cols; ++l) {
      const std::int8_t q = m.data()[j * m.stride() + l];
      CHECK(q >= -127);
      CHECK(std::fabs(back[j * cols + l] - w[j * ld + l]) <= m.scales()[j] * 0.5f * 1.0001f);
    }
}

TEST_CASE("Int8Matrix rejects bad input with a message naming it", "[int8_matrix]") {
  std::vector<float> w(12, 1.0f);
  w[7] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(Int8Matrix::quantize(w.data(), 3, 4, 4),
                    test::contains("weight (1, 3) is not finite"));
  CHECK_THROWS_WITH(Int8Matrix::quantize(w.data(), 3, 4, 3),
                    test::contains("row stride 3 is below 4"));
  CHECK_THROWS_WITH(Int8Matrix::quantize(nullptr, 3, 4, 4), test::contains("null weights"));
  const Int8Matrix m = Int8Matrix::quantize(std::vector<float>(12, 1.0f).data(), 3, 4, 4);
  std::vector<float> y(3);
  CHECK_THROWS_WITH(ProductSet().dense_i8_gemm(y.data(), 3, 1, m, y.data(), 3),
                    test::contains("ldx 3 is below 4"));
  CHECK_THROWS_WITH(m.dequantize_rows(2, 4, y.data(), 4),
                    test::contains("rows [2, 4) out of range"));
}

TEST_CASE("dense_i8_gemm equals a double-precision sum on every ISA", "[int8_matrix][kernels]") {
  test::for_each_isa([](Isa) {
    const ProductSet k;
    for (std::size_t n : {1, 7, 15, 16, 17, 31, 32, 33, 100, 257, 1000})
      for (std::size_t rows : {1, 3, 4, 5, 9})
        for (std::size_t t : {1, 2, 5}) {
          const std::size_t ldx = n + 3, ldy = rows + 2;
          const std::vector<float> w = random_floats(rows * n, 1.0f);
          const std::vector<float> x = random_floats(t * ldx, 1.0f);
          const Int8Matrix m = Int8Matrix::quantize(w.data(), rows, n, n);
          std::vector<float> y(t * ldy, -3.0f), part(t * ldy, -3.0f);
          k.dense_i8_gemm(x.data(), ldx, t, m, y.data(), ldy);
          k.dense_i8_gemm_range(x.data(), ldx, t, m, part.data(), ldy, 1, rows);
          for (std::size_t i = 0; i < t; ++i)
            for (std::size_t j = 0; j < rows; ++j) {
              double exact = 0, abs_sum = 0;
              for (std::size_t l = 0; l < n; ++l) {
                const double term = double(m.data()[j * m.stride() + l]) * double(x[i * ldx + l]);
                exact += term;
                abs_sum += std::fabs(term);
              }
              const double s = m.scales()[j];
              INFO("n = " << n << ", rows = " << rows << ", t = " << t << ", i = " << i
                          << ", j = " << j);
              const double bound = test::sum_bound(s * abs_sum, n + 1);
              CHECK(std::fabs(y[i * ldy + j] - s * exact) <= bound);
              if (j >= 1) CHECK(part[i * ldy + j] == y[i * ldy + j]);
              if (j == 0) CHECK(part[i * ldy] == -3.0f);  // outside the range: untouched
            }
          for (std::size_t i = 0; i < t; ++i)
            for (std::size_t j = rows; j < ldy; ++j) CHECK(y[i * ldy + j] == -3.0f);
        }
  });
}
