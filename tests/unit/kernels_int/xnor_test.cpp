// XNOR/popcount products on every ISA available here, bit for bit against the naive
// reference (tests/reference/naive_int8.hpp), over the size sweep, bit patterns, strided
// views and row ranges.
#include <mbok/products.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "int_support.hpp"
#include "reference/naive_int8.hpp"
#include "support.hpp"

using namespace mbok;

namespace {
void check_sweep(std::size_t budget) {
  for (std::size_t n : test::kIntCols)
    for (const auto& shape : test::int_shapes(n, budget)) {
      const std::size_t t = shape.first, m = shape.second;
      const BitMatrix a = test::fast_random_bits(t, n);
      const BitMatrix b = test::fast_random_bits(m, n);
      const auto ref =
          test::to_int32(test::naive_sign_dot(test::naive_signs(a), test::naive_signs(b), t, m, n));
      test::for_each_isa([&](Isa isa) {
        const ProductSet k;
        REQUIRE(k.isa() == isa);
        std::vector<std::int32_t> c(t * m, -99999);
        k.xnor_gemm(a, b, c.data(), m);
        INFO("n = " << n << ", t = " << t << ", m = " << m);
        REQUIRE(c == ref);
      });
    }
}
}  // namespace

TEST_CASE("xnor_gemm equals the naive reference over the size sweep", "[kernels_int][xnor]") {
  check_sweep(test::kSmallBudget);
}

TEST_CASE("xnor_gemm equals the naive reference over the larger shapes",
          "[kernels_int][xnor][slow]") {
  check_sweep(test::kLargeBudget);
}

TEST_CASE("xnor_gemm on adversarial bit patterns and strided views", "[kernels_int][xnor]") {
  const std::size_t sizes[] = {1, 64, 65, 511, 513, 997};
  for (std::size_t n : sizes)
    for (test::BitPattern pa : test::kBitPatterns)
      for (test::BitPattern pb : test::kBitPatterns) {
        const std::size_t t = 7, m = 9;
        const BitMatrix a = test::pattern_bits(t, n, pa);
        const BitMatrix b = test::pattern_bits(m, n, pb);
        const test::StridedBits as(a, 8), bs(b, 16);
        const auto ref = test::to_int32(
            test::naive_sign_dot(test::naive_signs(a), test::naive_signs(b), t, m, n));
        test::for_each_isa([&](Isa isa) {
          const ProductSet k;
          REQUIRE(k.isa() == isa);
          const std::size_t ldc = m + 3;
          std::vector<std::int32_t> c(t * ldc, -99999);
          k.xnor_gemm(as.view, bs.view, c.data(), ldc);
          INFO("n = " << n << ", patterns " << static_cast<int>(pa) << "/" << static_cast<int>(pb));
          std::vector<std::int32_t> expected(t * ldc, -99999);
          for (std::size_t i = 0; i < t; ++i)
            for (std::size_t j = 0; j < m; ++j) expected[i * ldc + j] = ref[i * m + j];
          REQUIRE(c == expected);
        });
      }
}

TEST_CASE("xnor_gemm_range writes exactly its columns", "[kernels_int][xnor]") {
  const std::size_t n = 700, t = 5, m = 37;
  const BitMatrix a = test::fast_random_bits(t, n);
  const BitMatrix b = test::fast_random_bits(m, n);
  const auto ref =
      test::to_int32(test::naive_sign_dot(test::naive_signs(a), test::naive_signs(b), t, m, n));
  const std::pair<std::size_t, std::size_t> ranges[] = {{0, 0},  {0, 1},   {3, 4},
                                                        {5, 22}, {30, 37}, {0, 37}};
  test::for_each_isa([&](Isa isa) {
    const ProductSet k;
    REQUIRE(k.isa() == isa);
    for (const auto& range : ranges) {
      const std::size_t j0 = range.first, j1 = range.second;
      std::vector<std::int32_t> c(t * m, -99999);
      k.xnor_gemm_range(a, b, c.data(), m, j0, j1);
      std::vector<std::int32_t> expected(t * m);
      for (std::size_t i = 0; i < t; ++i)
        for (std::size_t j = 0; j < m; ++j)
          expected[i * m + j] = (j >= j0 && j < j1) ? ref[i * m + j] : -99999;
      INFO("range [" << j0 << ", " << j1 << ")");
      REQUIRE(c == expected);
    }
  });
}

// Results near the int32 limits, where an intermediate in int32 overflows: XNOR over
// n = 2^30 + 512 bits (128 MiB per operand row), where 2 * popcount exceeds INT32_MAX while the
// dot product itself (n - 2 popcount, down to -n) fits; and the int8 products at
// n = kMaxInt8Features with every activation at -128 or 127, whose sums reach
// -128 n = -2147483520 and 128 n = 2147483520.
TEST_CASE("xnor_gemm over more than 2^30 bits", "[kernels_int][xnor][slow]") {
  const std::size_t n = (std::size_t{1} << 30) + 512;
  BitMatrix a(1, n), b(3, n);
  const std::size_t words = n / 64;
  std::memset(a.mutable_view().row(0), 0xff, words * 8);  // all -1
  std::memset(b.mutable_view().row(1), 0xff, words * 8);  // all -1
  std::memset(b.mutable_view().row(2), 0x55, words * 8);  // +-1 alternating
  const auto nn = static_cast<std::int64_t>(n);
  const std::int64_t want[3] = {-nn, nn, 0};
  test::for_each_isa([&](Isa) {
    const ProductSet k;
    std::int32_t c[3] = {7, 7, 7};
    k.xnor_gemm(a, b, c, 3);
    for (int j = 0; j < 3; ++j) CHECK(c[j] == want[j]);
  });
}

TEST_CASE("int8 products at kMaxInt8Features reach the int32 limits exactly",
          "[kernels_int][int8][lut][slow]") {
  const std::size_t n = kMaxInt8Features, t = 2;
  BitMatrix w(2, n);
  for (std::size_t j = 0; j < n; ++j) w.set_bit(1, j, true);  // row 1 all -1, row 0 all +1
  const std::size_t ld = w.row_words() * 64;
  test::Int8Rows x(t, n, ld, ld, 0, 0);
  std::memset(x.data.get(), -128, n);
  std::memset(x.data.get() + ld, 127, n);
  const auto nn = static_cast<std::int64_t>(n);
  const std::int64_t want[2][2] = {{-128 * nn, 128 * nn}, {127 * nn, -127 * nn}};
  test::for_each_isa([&](Isa) {
    const ProductSet k;
    std::vector<std::int32_t> y(t * 2, 7);
    k.sign_gemm_i8(x.data.get(), ld, t, w, y.data(), 2);
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t j = 0; j < 2; ++j) CHECK(y[i * 2 + j] == want[i][j]);
    Int8LutTables tables;
    k.build_lut_tables(x.data.get(), ld, t, n, tables);
    std::fill(y.begin(), y.end(), 7);
    k.sign_gemm_i8_lut(tables, k.prepare_lut(w), y.data(), 2);
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t j = 0; j < 2; ++j) CHECK(y[i * 2 + j] == want[i][j]);
  });
}
