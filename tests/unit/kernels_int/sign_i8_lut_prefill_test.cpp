// The many-token (prefill) table-lookup int8 product on every ISA available here, bit for bit
// against the naive reference: shapes whose rows, columns and tokens are not multiples of the
// product's tiles (16 rows, R = 4 tiles per panel, 2048-column blocks, 2-token register blocks,
// token blocks of up to 32), output ranges that start and end inside tiles, extreme
// activations with every bit pattern, and the entry the ProductSet and the forward pick.
#include <mbok/forward_int8.hpp>
#include <mbok/products.hpp>

#include <cstdint>
#include <vector>

#include "int_support.hpp"
#include "reference/naive_int8.hpp"
#include "support.hpp"

using namespace mbok;

namespace {

// The prefill entry of the active ISA's table over rows [j0, j1) of y (ldy = m + 3, the rest
// left at -99999) against the reference.
void check_prefill(const ProductSet& k, const test::Int8Rows& x, std::size_t t, const BitMatrix& w,
                   const std::vector<std::int32_t>& ref, std::size_t j0, std::size_t j1) {
  const std::size_t m = w.rows(), n = w.cols(), ldy = m + 3;
  const Int8LutWeights pw = k.prepare_lut(w);
  Int8LutTables tables;
  k.build_lut_tables(x.data.get(), x.ld, t, n, tables);
  std::vector<std::int32_t> y(t * ldy, -99999);
  k.table().sign_gemm_i8_lut_prefill(tables.view(), pw.view(), y.data() + j0, ldy, j0, j1);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < ldy; ++j)
      bad += y[i * ldy + j] != (j >= j0 && j < j1 ? ref[i * m + j] : -99999);
  INFO(isa_name(k.isa()) << ": n = " << n << ", m = " << m << ", t = " << t << ", rows [" << j0
                         << ", " << j1 << ")");
  REQUIRE(bad == 0);
}

std::vector<std::int32_t> reference(const test::Int8Rows& x, std::size_t t, const BitMatrix& w) {
  return test::to_int32(
      test::naive_i8_gemm(x.data.get(), x.ld, t, test::naive_signs(w), w.rows(), w.cols()));
}

}  // namespace

TEST_CASE("the prefill LUT product equals the naive reference over edge shapes and ranges",
          "[kernels_int][lut][prefill]") {
  struct Shape {
    std::size_t m, n, t;
  };
  // n = 2049 and 4100: a last column block of one and of two 32-column steps; t = 33 and 600
  // cross token blocks (32 tokens at small n, 16 at n = 4096) with an odd last pair.
  const Shape shapes[] = {{1, 3, 1},      {17, 65, 2},   {65, 997, 3},   {130, 2049, 17},
                          {64, 4100, 16}, {200, 96, 33}, {49, 4096, 37}, {33, 31, 600},
                          {70, 513, 64},  {16, 2048, 5}};
  for (const Shape& s : shapes) {
    const BitMatrix w = test::fast_random_bits(s.m, s.n);
    const std::size_t padded = w.row_words() * 64;
    const test::Int8Rows x(s.t, s.n, padded, padded + 64, -128, 127);
    const auto ref = reference(x, s.t, w);
    test::for_each_isa([&](Isa) {
      const ProductSet k;
      check_prefill(k, x, s.t, w, ref, 0, s.m);
      // Ranges inside tiles: the edges of one tile, and across a panel of 4 tiles.
      if (s.m > 5) check_prefill(k, x, s.t, w, ref, 3, s.m - 2);
      if (s.m > 66) check_prefill(k, x, s.t, w, ref, 17, 66);
    });
  }
}

TEST_CASE("the prefill LUT product with extreme activations and bit patterns",
          "[kernels_int][lut][prefill]") {
  for (const int v : {-128, -127, 127})
    for (test::BitPattern p : test::kBitPatterns) {
      const std::size_t t = 19, m = 37, n = 2100;
      const BitMatrix w = test::pattern_bits(m, n, p);
      const std::size_t padded = w.row_words() * 64;
      const test::Int8Rows x(t, n, padded, padded, v, v);
      const auto ref = reference(x, t, w);
      test::for_each_isa([&](Isa) {
        const ProductSet k;
        INFO("pattern " << static_cast<int>(p) << ", x = " << v);
        check_prefill(k, x, t, w, ref, 0, m);
      });
    }
}

TEST_CASE("sign_gemm_i8_lut and the int8 forward run the prefill product from its threshold on",
          "[kernels_int][lut][prefill]") {
  test::for_each_isa([&](Isa isa) {
    const ProductSet k;
    const detail::ProductTable& table = k.table();
    if (isa == Isa::avx512) REQUIRE(k.lut_prefill_min_tokens() == 16);
    const std::size_t min = k.lut_prefill_min_tokens();
    if (min == SIZE_MAX) {
      REQUIRE(table.sign_gemm_i8_lut_prefill == table.sign_gemm_i8_lut);
      return;
    }
    REQUIRE(table.sign_gemm_i8_lut_prefill != table.sign_gemm_i8_lut);
    REQUIRE(detail::lut_product(table, min - 1) == table.sign_gemm_i8_lut);
    REQUIRE(detail::lut_product(table, min) == table.sign_gemm_i8_lut_prefill);
    // Through the ProductSet (threads split the rows) and the fused forward, at both sides of
    // the threshold and at a t whose forward token blocks end in a short one.
    const std::size_t m = 100, n = 1000;
    const BitMatrix w = test::fast_random_bits(m, n);
    const std::size_t padded = w.row_words() * 64;
    for (std::size_t t : {min - 1, min, std::size_t{130}}) {
      const test::Int8Rows x(t, n, padded, padded, -128, 127);
      const auto ref = reference(x, t, w);
      Int8LutTables tables;
      k.build_lut_tables(x.data.get(), x.ld, t, n, tables);
      std::vector<std::int32_t> y(t * m, -1);
      k.sign_gemm_i8_lut(tables, k.prepare_lut(w), y.data(), m);
      INFO("t = " << t);
      REQUIRE(y == ref);
    }
  });
}
