// The table-lookup int8 product (sign_gemm_i8_lut) on every ISA available here, bit for bit
// against the naive reference: the edge sizes of n, m and t, extreme activations (-128, -127
// and 127 everywhere: any table entry or narrow accumulator that overflows shows), bit
// patterns, ranges that start and end inside a 16-row tile, the tables of every ISA equal to
// the portable ones byte for byte, and the input checks of the int8 products.
#include <mbok/products.hpp>

#include <cstdint>
#include <limits>
#include <vector>

#include "int_support.hpp"
#include "reference/naive_int8.hpp"
#include "support.hpp"

using namespace mbok;

namespace {

const std::size_t kLutCols[] = {1, 3, 4, 5, 63, 64, 65, 127, 511, 512, 513, 997, 4096};
const std::size_t kLutRows[] = {1, 7, 15, 16, 17, 63, 64, 65, 130};
const std::size_t kLutTokens[] = {1, 2, 3, 5, 8, 17};

// Runs the LUT product of the active ISA's ProductSet over [j0, j1) of y (ldy m + 3, the rest
// left at -99999) and compares with the reference.
void check_lut(const ProductSet& k, const test::Int8Rows& x, std::size_t t, const BitMatrix& w,
               const std::vector<std::int32_t>& ref, std::size_t j0, std::size_t j1) {
  const std::size_t m = w.rows(), n = w.cols(), ldy = m + 3;
  const Int8LutWeights pw = k.prepare_lut(w);
  Int8LutTables tables;
  k.build_lut_tables(x.data.get(), x.ld, t, n, tables);
  std::vector<std::int32_t> y(t * ldy, -99999);
  if (j0 == 0 && j1 == m)
    k.sign_gemm_i8_lut(tables, pw, y.data(), ldy);
  else
    k.sign_gemm_i8_lut_range(tables, pw, y.data(), ldy, j0, j1);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < ldy; ++j) {
      const std::int32_t want = j >= j0 && j < j1 ? ref[i * m + j] : -99999;
      bad += y[i * ldy + j] != want;
    }
  INFO(isa_name(k.isa()) << ": n = " << n << ", m = " << m << ", t = " << t << ", rows [" << j0
                         << ", " << j1 << ")");
  REQUIRE(bad == 0);
}

void sweep(std::size_t budget) {
  for (std::size_t n : kLutCols)
    for (std::size_t m : kLutRows)
      for (std::size_t t : kLutTokens) {
        // Every (n, m) with one token and every (n, t) with one row; the rest within budget.
        if (t * m * n > budget && t != 1 && m != 1) continue;
        const BitMatrix w = test::fast_random_bits(m, n);
        const std::size_t padded = w.row_words() * 64;
        const test::Int8Rows x(t, n, padded, padded + 64, -128, 127);
        const auto ref =
            test::to_int32(test::naive_i8_gemm(x.data.get(), x.ld, t, test::naive_signs(w), m, n));
        test::for_each_isa([&](Isa isa) {
          const ProductSet k;
          REQUIRE(k.isa() == isa);
          check_lut(k, x, t, w, ref, 0, m);
        });
      }
}

}  // namespace

TEST_CASE("the LUT entries of each ISA's table are its own", "[kernels_int][lut]") {
  const detail::ProductTable& scalar = detail::product_table(Isa::scalar);
  test::for_each_isa([&](Isa isa) {
    const ProductSet k;
    if (isa == Isa::scalar) {
      REQUIRE(k.table().lut_layout() == detail::LutLayout::interleave4);
      return;
    }
    REQUIRE(k.table().sign_gemm_i8_lut != scalar.sign_gemm_i8_lut);
    REQUIRE(k.table().lut_tables_i8 != scalar.lut_tables_i8);
    REQUIRE(k.table().lut_layout != scalar.lut_layout);
#if MBOK_HAS_X86_KERNELS
    if (isa == Isa::avx2) REQUIRE(k.table().lut_layout() == detail::LutLayout::lanes16);
    if (isa == Isa::avx512)
      REQUIRE(k.table().lut_layout() == (cpu_features().avx512vbmi && cpu_features().avx512vnni
                                             ? detail::LutLayout::interleave4
                                             : detail::LutLayout::lanes16));
#endif
#if MBOK_HAS_NEON_KERNELS
    if (isa == Isa::neon) REQUIRE(k.table().lut_layout() == detail::LutLayout::interleave4);
#endif
  });
}

TEST_CASE("every ISA builds the portable tables byte for byte", "[kernels_int][lut]") {
  for (std::size_t n : {1u, 5u, 33u, 64u, 100u, 513u, 1000u}) {
    const std::size_t t = 3, padded = padded_row_words(n) * 64;
    const test::Int8Rows x(t, n, padded, padded, -128, 127);
    const std::size_t ld = detail::lut_table_bytes(n);
    std::vector<std::uint8_t> want(t * ld + 64);
    std::vector<std::int32_t> want_base(t);
    detail::scalar::lut_tables_i8(x.data.get(), x.ld, t, n, want.data(), ld, want_base.data());
    test::for_each_isa([&](Isa) {
      const ProductSet k;
      Int8LutTables got;
      k.build_lut_tables(x.data.get(), x.ld, t, n, got);
      INFO("n = " << n);
      REQUIRE(got.view().ld == ld);
      REQUIRE(std::vector<std::uint8_t>(got.view().data, got.view().data + t * ld) ==
              std::vector<std::uint8_t>(want.begin(), want.begin() + static_cast<long>(t * ld)));
      REQUIRE(std::vector<std::int32_t>(got.view().base, got.view().base + t) == want_base);
    });
  }
}

TEST_CASE("sign_gemm_i8_lut equals the naive reference over the edge sizes", "[kernels_int][lut]") {
  sweep(60000);
}

TEST_CASE("sign_gemm_i8_lut over every size combination", "[kernels_int][lut][slow]") {
  sweep(std::numeric_limits<std::size_t>::max());
}

TEST_CASE("sign_gemm_i8_lut with extreme activations, bit patterns and unaligned ranges",
          "[kernels_int][lut]") {
  struct Range {
    int lo, hi;
  };
  const Range ranges[] = {{-128, -128}, {-127, -127}, {127, 127}, {-128, 127}, {-8, 7}};
  for (std::size_t n : {5u, 64u, 997u, 4096u})
    for (test::BitPattern p : test::kBitPatterns)
      for (const Range& r : ranges) {
        const std::size_t t = 3, m = 37;
        const BitMatrix w = test::pattern_bits(m, n, p);
        const std::size_t padded = w.row_words() * 64;
        const test::Int8Rows x(t, n, padded, padded, r.lo, r.hi);
        const auto ref =
            test::to_int32(test::naive_i8_gemm(x.data.get(), x.ld, t, test::naive_signs(w), m, n));
        test::for_each_isa([&](Isa) {
          const ProductSet k;
          INFO("pattern " << static_cast<int>(p) << ", x in [" << r.lo << ", " << r.hi << "]");
          check_lut(k, x, t, w, ref, 0, m);
          check_lut(k, x, t, w, ref, 3, 20);   // inside tiles 0 and 1
          check_lut(k, x, t, w, ref, 17, 33);  // inside tiles 1 and 2
          check_lut(k, x, t, w, ref, 5, 9);    // inside one tile
          check_lut(k, x, t, w, ref, 32, 37);  // the last, partial tile
          check_lut(k, x, t, w, ref, 16, 16);  // empty
        });
      }
}

TEST_CASE("sign_gemm_i8_lut rejects weights packed for another layout", "[kernels_int][lut]") {
  const BitMatrix w = test::fast_random_bits(20, 100);
  const Int8LutWeights scalar_packed = ProductSet(Isa::scalar).prepare_lut(w);
  test::for_each_isa([&](Isa) {
    const ProductSet k;
    Int8LutTables tables;
    const test::Int8Rows x(1, 100, 512, 512, -5, 5);
    k.build_lut_tables(x.data.get(), x.ld, 1, 100, tables);
    std::vector<std::int32_t> y(20);
    if (k.table().lut_layout() == detail::LutLayout::interleave4)
      REQUIRE_NOTHROW(k.sign_gemm_i8_lut(tables, scalar_packed, y.data(), 20));
    else
      REQUIRE_THROWS_AS(k.sign_gemm_i8_lut(tables, scalar_packed, y.data(), 20), InvalidArgument);
    Int8LutTables other;
    const test::Int8Rows x2(1, 99, 512, 512, -5, 5);
    k.build_lut_tables(x2.data.get(), x2.ld, 1, 99, other);
    REQUIRE_THROWS_AS(k.sign_gemm_i8_lut(other, k.prepare_lut(w), y.data(), 20), InvalidArgument);
  });
}

TEST_CASE("the int8 products reject a nonzero value past n", "[kernels_int][lut][int8]") {
  const std::size_t n = 100, m = 5;
  const BitMatrix w = test::fast_random_bits(m, n);
  test::Int8Rows x(2, n, 512, 512, -3, 3);
  x.data.get()[512 + 300] = 1;  // token 1, inside the padded row
  std::vector<std::int32_t> y(2 * m);
  test::for_each_isa([&](Isa) {
    const ProductSet k;
    REQUIRE_THROWS_AS(k.sign_gemm_i8(x.data.get(), x.ld, 2, w, y.data(), m), InvalidArgument);
    REQUIRE_THROWS_AS(k.sign_gemm_i8_range(x.data.get(), x.ld, 2, w, y.data(), m, 0, 1),
                      InvalidArgument);
    Int8LutTables tables;
    REQUIRE_THROWS_AS(k.build_lut_tables(x.data.get(), x.ld, 2, n, tables), InvalidArgument);
    // One token only: the bad byte is not read.
    REQUIRE_NOTHROW(k.sign_gemm_i8(x.data.get(), x.ld, 1, w, y.data(), m));
  });
}

// The same check at every position: each byte past n of the padded row, in the first and the
// last token (a check loop that starts one late or stops one short accepts a stray byte at its
// ends), with values whose bits cancel in a sum (1, -1, -128).
TEST_CASE("the int8 products reject a nonzero value at every position past n",
          "[kernels_int][lut][int8]") {
  for (const std::size_t n : {std::size_t{100}, std::size_t{511}, std::size_t{513}}) {
    const std::size_t m = 3, t = 3, padded = padded_row_words(n) * 64;
    INFO("n = " << n);
    const BitMatrix w = test::fast_random_bits(m, n);
    test::Int8Rows x(t, n, padded, padded, -3, 3);
    std::vector<std::int32_t> y(t * m);
    const ProductSet k;  // the check is the same on every ISA
    for (const std::size_t token : {std::size_t{0}, t - 1}) {
      std::int8_t* row = x.data.get() + token * x.ld;
      row[n - 1] = -128;  // a real feature may hold anything
      REQUIRE_NOTHROW(k.sign_gemm_i8(x.data.get(), x.ld, t, w, y.data(), m));
      std::size_t refused = 0;
      for (std::size_t l = n; l < padded; ++l) {
        const std::int8_t values[] = {1, -1, -128};
        row[l] = values[l % 3];
        try {
          k.sign_gemm_i8(x.data.get(), x.ld, t, w, y.data(), m);
          FAIL_CHECK("token " << token << ", byte " << l << " accepted");
        } catch (const InvalidArgument& e) {
          const std::string want = "token " + std::to_string(token) + " has the nonzero value " +
                                   std::to_string(values[l % 3]) + " at column " +
                                   std::to_string(l) + ",";
          if (std::string(e.what()).find(want) == std::string::npos)
            FAIL_CHECK("token " << token << ", byte " << l << ": " << e.what());
          ++refused;
        }
        Int8LutTables tables;
        CHECK_THROWS_AS(k.build_lut_tables(x.data.get(), x.ld, t, n, tables), InvalidArgument);
        row[l] = 0;
      }
      CHECK(refused == padded - n);
    }
  }
}

TEST_CASE("the int8 and XNOR products reject rows whose results overflow int32",
          "[kernels_int][lut][int8]") {
  // Views that claim huge rows over a small buffer: the checks must throw before any read.
  alignas(64) static std::uint64_t words[8] = {};
  alignas(64) static std::int8_t bytes[64] = {};
  const std::size_t too_long = kMaxInt8Features + 1;
  const BitMatrixView w = BitMatrixView::unchecked(words, 1, too_long, padded_row_words(too_long));
  std::int32_t y[2] = {};
  const ProductSet k;
  REQUIRE_THROWS_AS(k.sign_gemm_i8(bytes, padded_row_words(too_long) * 64, 1, w, y, 1),
                    InvalidArgument);
  REQUIRE_THROWS_AS(k.prepare_lut(w), InvalidArgument);
  Int8LutTables tables;
  REQUIRE_THROWS_AS(k.build_lut_tables(bytes, padded_row_words(too_long) * 64, 1, too_long, tables),
                    InvalidArgument);
  const std::size_t huge = kMaxXnorCols + 1;
  const BitMatrixView a = BitMatrixView::unchecked(words, 1, huge, padded_row_words(huge));
  REQUIRE_THROWS_AS(k.xnor_gemm(a, a, y, 1), InvalidArgument);
  REQUIRE(kMaxInt8Features == (std::size_t{1} << 24) - 1);
}
