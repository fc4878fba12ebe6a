// The NEON tier: that it is detected and really runs on AArch64 (and that every product of its
// table is a NEON product), and xnor_gemm on every available ISA against the naive reference
// over edge sizes, adversarial bit patterns, strided views and column ranges.
#include <mbok/products.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "neon_support.hpp"
#include "support.hpp"

using namespace mbok;
namespace sweep = mbok::test::neon_sweep;

TEST_CASE("the NEON tier is detected and its table holds the NEON products",
          "[kernels_neon][isa]") {
#if MBOK_HAS_NEON_KERNELS
  REQUIRE(isa_compiled(Isa::neon));
  REQUIRE(cpu_supports(Isa::neon));
  REQUIRE(detected_isa() == Isa::neon);
  const char* env = std::getenv("MBOK_ISA");
  if (env == nullptr || *env == '\0') {
    REQUIRE(active_isa() == Isa::neon);
    REQUIRE(ProductSet().isa() == Isa::neon);
  }
  const detail::ProductTable& t = detail::product_table(Isa::neon);
  CHECK(t.isa == Isa::neon);
  CHECK(t.xnor_gemm == &detail::neon::xnor_gemm);
  CHECK(t.sign_gemm_f32 == &detail::neon::sign_gemm_f32);
  CHECK(t.sign_gemm_t_f32 == &detail::neon::sign_gemm_t_f32);
  CHECK(t.sign_gemm_acc_f32 == &detail::neon::sign_gemm_acc_f32);
  CHECK(t.sign_gemm_i8 == &detail::neon::sign_gemm_i8);
  // The int8 entry picks SDOT exactly when hwcap reports the dot-product extension. The
  // emulated CPU's features are known to the caller (scripts/test_neon.sh runs this binary
  // on a CPU model with and one without it) and passed in MBOK_EXPECT_DOTPROD.
  CHECK(detail::neon::sign_i8_uses_sdot() == cpu_features().dotprod);
  if (const char* expect = std::getenv("MBOK_EXPECT_DOTPROD")) {
    INFO("MBOK_EXPECT_DOTPROD=" << expect);
    CHECK(cpu_features().dotprod == (std::string(expect) == "1"));
  }
  WARN("NEON products active; int8 variant: "
       << (detail::neon::sign_i8_uses_sdot() ? "sdot" : "plain (no dot-product extension)"));
#else
  CHECK_FALSE(isa_available(Isa::neon));
  WARN("not an AArch64 build: NEON-specific checks skipped (run scripts/test_neon.sh)");
#endif
}

namespace {

void check_xnor(const BitMatrixView& a, const BitMatrixView& b, const char* what) {
  const auto ref = sweep::ref_xnor(a, b);
  const std::size_t t = a.rows(), m = b.rows();
  test::for_each_isa([&](Isa isa) {
    const ProductSet k;
    REQUIRE(k.isa() == isa);
    INFO(what << ": t = " << t << ", m = " << m << ", n = " << a.cols());
    // Whole range through the threaded entry, then two pieces leaving a gap untouched.
    std::vector<std::int32_t> c(t * m, -77777);
    k.xnor_gemm(a, b, c.data(), m);
    REQUIRE(c == ref);
    const std::size_t ldc = m + 3, gap0 = m / 3, gap1 = (2 * m) / 3;
    std::vector<std::int32_t> d(t * ldc, -77777);
    k.xnor_gemm_range(a, b, d.data(), ldc, 0, gap0);
    k.xnor_gemm_range(a, b, d.data(), ldc, gap1, m);
    std::string bad;
    for (std::size_t i = 0; i < t && bad.empty(); ++i)
      for (std::size_t j = 0; j < ldc && bad.empty(); ++j) {
        const bool written = j < gap0 || (j >= gap1 && j < m);
        const std::int32_t want = written ? ref[i * m + j] : -77777;
        if (d[i * ldc + j] != want) bad = sweep::where(i, j, d[i * ldc + j], " instead of ", want);
      }
    INFO(bad);
    REQUIRE(bad.empty());
  });
}

}  // namespace

TEST_CASE("xnor_gemm equals the naive reference over the edge sizes", "[kernels_neon][xnor]") {
  sweep::note_when_no_neon();
  for (std::size_t n : sweep::kCols)
    for (const auto& [t, m] : sweep::shapes(n)) {
      const BitMatrix a = test::random_bits(t, n), b = test::random_bits(m, n);
      check_xnor(a, b, "random");
    }
}

TEST_CASE("xnor_gemm on adversarial patterns and strided views", "[kernels_neon][xnor]") {
  for (std::size_t n : sweep::kCols)
    for (sweep::Bits pa : sweep::kBitKinds)
      for (sweep::Bits pb : {sweep::Bits::all_plus, sweep::Bits::all_minus, sweep::Bits::checker}) {
        const BitMatrix a = sweep::make_bits(3, n, pa), b = sweep::make_bits(7, n, pb);
        const sweep::StridedBits as(a, 8), bs(b, 16);
        INFO("a " << sweep::bits_name(pa) << ", b " << sweep::bits_name(pb));
        check_xnor(as.view, bs.view, "strided");
      }
}

TEST_CASE("xnor_gemm counts past 2^16 ones per row pair exactly", "[kernels_neon][xnor]") {
  // 1024 units of 512 bits + 1 bit: the NEON product's 16-bit lanes are flushed after 1023
  // units, so all-different rows (every bit counted) cross that boundary at full count.
  const std::size_t n = 1024 * 512 + 1;
  const BitMatrix a = sweep::make_bits(1, n, sweep::Bits::all_minus);
  BitMatrix b(3, n);
  auto bv = b.mutable_view();
  for (std::size_t l = 0; l < n; ++l) {
    bv.set_bit(1, l, true);
    bv.set_bit(2, l, l % 3 == 0);
  }
  check_xnor(a, b, "long rows");
  test::for_each_isa([&](Isa) {
    std::int32_t c[3] = {0, 0, 0};
    ProductSet().xnor_gemm(a, b, c, 3);
    CHECK(c[0] == -static_cast<std::int32_t>(n));
    CHECK(c[1] == static_cast<std::int32_t>(n));
  });
}
