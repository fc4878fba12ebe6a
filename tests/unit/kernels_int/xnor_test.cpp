// XNOR/popcount products on every ISA available here, bit for bit against the naive
// reference (tests/reference/naive_int8.hpp), over the size sweep, bit patterns, strided
// views and row ranges.
#include <mbok/kernels.hpp>

#include <cstdint>
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
        const KernelSet k;
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
          const KernelSet k;
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
    const KernelSet k;
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
