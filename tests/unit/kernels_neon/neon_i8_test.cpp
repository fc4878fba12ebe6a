// Boolean weights x int8 activations on every available ISA and, on AArch64, both NEON
// variants called directly (SDOT when the CPU has the dot-product extension, the plain
// widening-add one always), bit for bit against the naive reference: edge sizes, extreme
// activations (-128 / 127 everywhere, so any narrow accumulator that overflows shows),
// bit patterns, strided views, garbage past the padded row, and ranges.
#include <mbok/products.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "neon_support.hpp"
#include "support.hpp"

using namespace mbok;
namespace sweep = mbok::test::neon_sweep;

namespace {

using I8Fn = void (*)(const std::int8_t*, std::size_t, std::size_t, BitMatrixView, std::int32_t*,
                      std::size_t, std::size_t, std::size_t);

struct Variant {
  const char* name;
  I8Fn fn;
};

// The NEON variants this CPU can run, called outside the table.
std::vector<Variant> neon_variants() {
  std::vector<Variant> out;
#if MBOK_HAS_NEON_KERNELS
  out.push_back({"neon-plain", &detail::neon::sign_gemm_i8_plain});
  if (cpu_features().dotprod) out.push_back({"neon-sdot", &detail::neon::sign_gemm_i8_sdot});
#endif
  return out;
}

// Runs check(name, fn) with each ISA's table entry (under its limit) and each NEON variant.
template <typename Check>
void for_each_i8(Check&& check) {
  test::for_each_isa([&](Isa isa) {
    const ProductSet k;
    REQUIRE(k.isa() == isa);
    check(isa_name(isa), [&](const std::int8_t* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                             std::int32_t* y, std::size_t ldy, std::size_t j0, std::size_t j1) {
      k.sign_gemm_i8_range(x, ldx, t, w, y, ldy, j0, j1);
    });
  });
  for (const Variant& v : neon_variants()) check(v.name, v.fn);
}

void check_i8(const sweep::Int8Rows& x, std::size_t t, const BitMatrixView& w) {
  const std::size_t m = w.rows();
  const auto ref = sweep::ref_sign_gemm<std::int8_t, std::int64_t>(x.data.get(), x.ld, t, w);
  for_each_i8([&](const char* name, auto&& fn) {
    INFO(name << ": t = " << t << ", m = " << m << ", n = " << w.cols());
    const std::size_t ldy = m + 2, gap0 = m / 3, gap1 = (2 * m) / 3;
    std::vector<std::int32_t> y(t * ldy, -99999);
    fn(x.data.get(), x.ld, t, w, y.data(), ldy, 0, gap0);
    fn(x.data.get(), x.ld, t, w, y.data(), ldy, gap1, m);
    std::string bad;
    for (std::size_t i = 0; i < t && bad.empty(); ++i)
      for (std::size_t j = 0; j < ldy && bad.empty(); ++j) {
        const bool written = j < gap0 || (j >= gap1 && j < m);
        const std::int64_t want = written ? ref[i * m + j] : -99999;
        if (y[i * ldy + j] != want) bad = sweep::where(i, j, y[i * ldy + j], " instead of ", want);
      }
    INFO(bad);
    REQUIRE(bad.empty());
  });
}

}  // namespace

TEST_CASE("both NEON int8 variants are exercised where the CPU allows", "[kernels_neon][int8]") {
  sweep::note_when_no_neon();
#if MBOK_HAS_NEON_KERNELS
  REQUIRE(neon_variants().size() == (cpu_features().dotprod ? 2u : 1u));
  if (!cpu_features().dotprod)
    WARN("CPU without the dot-product extension: the SDOT variant is not run here");
#else
  REQUIRE(neon_variants().empty());
#endif
}

TEST_CASE("sign_gemm_i8 equals the naive reference over the edge sizes", "[kernels_neon][int8]") {
  for (std::size_t n : sweep::kCols)
    for (const auto& [t, m] : sweep::shapes(n)) {
      const BitMatrix w = test::random_bits(m, n);
      const std::size_t padded = w.row_words() * 64;
      const sweep::Int8Rows x(t, n, padded, padded, -128, 127);
      check_i8(x, t, w);
    }
}

TEST_CASE("sign_gemm_i8 with extreme activations, bit patterns and strided views",
          "[kernels_neon][int8]") {
  struct Range {
    int lo, hi;
  };
  const Range ranges[] = {{-128, -128}, {127, 127}, {-128, 127}, {-1, 1}};
  for (std::size_t n : sweep::kCols)
    for (sweep::Bits p : sweep::kBitKinds)
      for (const Range& r : ranges) {
        const BitMatrix w = sweep::make_bits(7, n, p);
        const sweep::StridedBits ws(w, 8);
        const std::size_t padded = w.row_words() * 64;
        // Rows 128 bytes longer than the padded row, filled with garbage the kernels must skip.
        const sweep::Int8Rows x(3, n, padded, padded + 128, r.lo, r.hi);
        INFO("bits " << sweep::bits_name(p) << ", x in [" << r.lo << ", " << r.hi << "]");
        check_i8(x, 3, ws.view);
      }
}
