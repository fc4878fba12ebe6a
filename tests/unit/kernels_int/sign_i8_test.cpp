// Boolean weights x int8 activations on every ISA available here, and both AVX-512
// variants (VNNI and the AVX-512BW fallback) called directly, bit for bit against the naive
// reference. Extreme activations (-128 / 127 everywhere) check that no int16 or int32
// accumulator overflows: the kernels are exact for n < 2^24 (kMaxInt8Features).
#include <mbok/products.hpp>

#include <cstdint>
#include <vector>

#include "int_support.hpp"
#include "reference/naive_int8.hpp"
#include "support.hpp"

using namespace mbok;

namespace {

using I8Fn = void (*)(const std::int8_t*, std::size_t, std::size_t, BitMatrixView, std::int32_t*,
                      std::size_t, std::size_t, std::size_t);

// Every implementation to check: the table of each available ISA (named by the ISA), plus
// the two AVX-512 variants when the CPU runs them.
struct Impl {
  const char* name;
  I8Fn fn;
};

std::vector<Impl> direct_variants() {
  std::vector<Impl> out;
#if MBOK_HAS_X86_KERNELS
  if (isa_available(Isa::avx512)) {
    out.push_back({"avx512-bw", &detail::avx512::sign_gemm_i8_bw});
    if (cpu_features().avx512vnni)
      out.push_back({"avx512-vnni", &detail::avx512::sign_gemm_i8_vnni});
  }
#endif
  return out;
}

// Runs `check(name, fn)` for each table (under the ISA limit, asserting it) and each direct
// variant.
template <typename Check>
void for_each_i8_impl(Check&& check) {
  test::for_each_isa([&](Isa isa) {
    const ProductSet k;
    REQUIRE(k.isa() == isa);
    check(isa_name(isa), [&](const std::int8_t* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                             std::int32_t* y, std::size_t ldy, std::size_t j0, std::size_t j1) {
      k.sign_gemm_i8_range(x, ldx, t, w, y, ldy, j0, j1);
    });
  });
  for (const Impl& impl : direct_variants()) {
    INFO("variant " << impl.name);
    check(impl.name, impl.fn);
  }
}

}  // namespace

TEST_CASE("the avx512 table runs the VNNI variant exactly when the CPU has VNNI",
          "[kernels_int][int8]") {
#if MBOK_HAS_X86_KERNELS
  if (!isa_available(Isa::avx512)) {
    WARN("AVX-512 not available here: only the avx2 and scalar int8 products are checked");
    REQUIRE(direct_variants().empty());
    return;
  }
  REQUIRE(detail::avx512::sign_i8_uses_vnni() == cpu_features().avx512vnni);
  REQUIRE(direct_variants().size() == (cpu_features().avx512vnni ? 2u : 1u));
#else
  REQUIRE(direct_variants().empty());
#endif
}

namespace {
void check_sweep(std::size_t budget) {
  for (std::size_t n : test::kIntCols)
    for (const auto& shape : test::int_shapes(n, budget)) {
      const std::size_t t = shape.first, m = shape.second;
      const BitMatrix w = test::fast_random_bits(m, n);
      const std::size_t padded = w.row_words() * 64;
      const test::Int8Rows x(t, n, padded, padded, -128, 127);
      const auto ref =
          test::to_int32(test::naive_i8_gemm(x.data.get(), x.ld, t, test::naive_signs(w), m, n));
      for_each_i8_impl([&](const char* name, auto&& fn) {
        std::vector<std::int32_t> y(t * m, -99999);
        fn(x.data.get(), x.ld, t, w, y.data(), m, 0, m);
        INFO(name << ": n = " << n << ", t = " << t << ", m = " << m);
        REQUIRE(y == ref);
      });
    }
}
}  // namespace

TEST_CASE("sign_gemm_i8 equals the naive reference over the size sweep", "[kernels_int][int8]") {
  check_sweep(test::kSmallBudget);
}

TEST_CASE("sign_gemm_i8 equals the naive reference over the larger shapes",
          "[kernels_int][int8][slow]") {
  check_sweep(test::kLargeBudget);
}

TEST_CASE("sign_gemm_i8 with extreme activations, bit patterns, strides and ranges",
          "[kernels_int][int8]") {
  const std::size_t sizes[] = {1, 65, 512, 997, 4099};
  struct Range {
    int lo, hi;
  };
  const Range ranges[] = {{-128, -128}, {127, 127}, {-128, 127}, {-1, 1}};
  for (std::size_t n : sizes)
    for (test::BitPattern p : test::kBitPatterns)
      for (const Range& r : ranges) {
        const std::size_t t = 5, m = 11;
        const BitMatrix w = test::pattern_bits(m, n, p);
        const test::StridedBits ws(w, 8);
        const std::size_t padded = w.row_words() * 64;
        const test::Int8Rows x(t, n, padded, padded + 128, r.lo, r.hi);
        const auto ref =
            test::to_int32(test::naive_i8_gemm(x.data.get(), x.ld, t, test::naive_signs(w), m, n));
        for_each_i8_impl([&](const char* name, auto&& fn) {
          const std::size_t ldy = m + 2;
          // Whole range, then two pieces that must leave the other columns alone.
          std::vector<std::int32_t> y(t * ldy, -99999);
          fn(x.data.get(), x.ld, t, ws.view, y.data(), ldy, 0, 4);
          fn(x.data.get(), x.ld, t, ws.view, y.data(), ldy, 6, m);
          INFO(name << ": n = " << n << ", pattern " << static_cast<int>(p) << ", x in [" << r.lo
                    << ", " << r.hi << "]");
          std::vector<std::int32_t> expected(t * ldy);
          for (std::size_t i = 0; i < t; ++i)
            for (std::size_t j = 0; j < ldy; ++j) {
              const bool written = j < 4 || (j >= 6 && j < m);
              expected[i * ldy + j] = written ? ref[i * m + j] : -99999;
            }
          REQUIRE(y == expected);
        });
      }
}

TEST_CASE("sign_gemm_i8 stays exact at the largest sums of a long row",
          "[kernels_int][int8][slow]") {
  // n = 65536: |result| = 128 n = 2^23, and the VNNI/int16 blocks wrap many times.
  const std::size_t n = 65536, t = 2, m = 3;
  const BitMatrix w = test::pattern_bits(m, n, test::BitPattern::all_minus);
  const std::size_t padded = w.row_words() * 64;
  const test::Int8Rows x(t, n, padded, padded, -128, -128);
  const auto ref =
      test::to_int32(test::naive_i8_gemm(x.data.get(), x.ld, t, test::naive_signs(w), m, n));
  REQUIRE(ref[0] == 128 * static_cast<std::int32_t>(n));
  for_each_i8_impl([&](const char* name, auto&& fn) {
    std::vector<std::int32_t> y(t * m);
    fn(x.data.get(), x.ld, t, w, y.data(), m, 0, m);
    INFO(name);
    REQUIRE(y == ref);
  });
}
