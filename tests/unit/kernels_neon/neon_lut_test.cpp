// The table-lookup int8 product on every available ISA (on AArch64: the NEON TBL kernel),
// bit for bit against the naive reference over the edge sizes, extreme activations, bit
// patterns and ranges that cut 16-row tiles.
#include <mbok/products.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "neon_support.hpp"
#include "support.hpp"

using namespace mbok;
namespace sweep = mbok::test::neon_sweep;

namespace {

void check_lut(const sweep::Int8Rows& x, std::size_t t, const BitMatrix& w) {
  const std::size_t m = w.rows(), n = w.cols();
  const auto ref = sweep::ref_sign_gemm<std::int8_t, std::int64_t>(x.data.get(), x.ld, t, w);
  test::for_each_isa([&](Isa isa) {
    const ProductSet k;
    REQUIRE(k.isa() == isa);
    const Int8LutWeights pw = k.prepare_lut(w);
    Int8LutTables tables;
    k.build_lut_tables(x.data.get(), x.ld, t, n, tables);
    const std::size_t ldy = m + 2, cut0 = m / 3, cut1 = (2 * m) / 3;
    std::vector<std::int32_t> y(t * ldy, -99999);
    k.sign_gemm_i8_lut_range(tables, pw, y.data(), ldy, 0, cut0);
    k.sign_gemm_i8_lut_range(tables, pw, y.data(), ldy, cut1, m);
    std::string bad;
    for (std::size_t i = 0; i < t && bad.empty(); ++i)
      for (std::size_t j = 0; j < ldy && bad.empty(); ++j) {
        const bool written = j < cut0 || (j >= cut1 && j < m);
        const std::int64_t want = written ? ref[i * m + j] : -99999;
        if (y[i * ldy + j] != want) bad = sweep::where(i, j, y[i * ldy + j], " instead of ", want);
      }
    INFO(isa_name(isa) << ": t = " << t << ", m = " << m << ", n = " << n << ": " << bad);
    REQUIRE(bad.empty());
  });
}

}  // namespace

TEST_CASE("the NEON table runs its own LUT products", "[kernels_neon][lut]") {
  sweep::note_when_no_neon();
#if MBOK_HAS_NEON_KERNELS
  if (sweep::neon_here()) {
    const ProductSet k(Isa::neon);
    const detail::ProductTable& scalar = detail::product_table(Isa::scalar);
    REQUIRE(k.table().sign_gemm_i8_lut == &detail::neon::sign_gemm_i8_lut_tbl);
    REQUIRE(k.table().lut_tables_i8 == &detail::neon::lut_tables_tbl);
    REQUIRE(k.table().sign_gemm_i8_lut != scalar.sign_gemm_i8_lut);
  }
#endif
}

TEST_CASE("sign_gemm_i8_lut equals the naive reference over the edge sizes",
          "[kernels_neon][lut]") {
  for (std::size_t n : sweep::kCols)
    for (const auto& [t, m] : sweep::shapes(n)) {
      const BitMatrix w = test::random_bits(m, n);
      const std::size_t padded = w.row_words() * 64;
      const sweep::Int8Rows x(t, n, padded, padded, -128, 127);
      check_lut(x, t, w);
    }
}

TEST_CASE("sign_gemm_i8_lut with extreme activations and bit patterns", "[kernels_neon][lut]") {
  struct Range {
    int lo, hi;
  };
  const Range ranges[] = {{-128, -128}, {-127, -127}, {127, 127}, {-128, 127}};
  for (std::size_t n : {1u, 65u, 513u, 4099u})
    for (sweep::Bits p : sweep::kBitKinds)
      for (const Range& r : ranges) {
        const BitMatrix w = sweep::make_bits(37, n, p);
        const std::size_t padded = w.row_words() * 64;
        const sweep::Int8Rows x(3, n, padded, padded + 128, r.lo, r.hi);
        INFO("bits " << sweep::bits_name(p) << ", x in [" << r.lo << ", " << r.hi << "]");
        check_lut(x, 3, w);
      }
}
