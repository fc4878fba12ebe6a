// The float products (sign_gemm, its accumulate form, and the transposed product of the
// backward pass) on every available ISA, the NEON one included on AArch64, against the naive
// double-precision references over the edge sizes, adversarial values (NaN past n, huge,
// tiny, integers), bit patterns, strided views and ranges.
#include <mbok/products.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "neon_support.hpp"
#include "support.hpp"

using namespace mbok;
namespace sweep = mbok::test::neon_sweep;

namespace {

double abs_sum(const float* x, std::size_t n, std::size_t stride = 1) {
  double s = 0;
  for (std::size_t l = 0; l < n; ++l) s += std::fabs(static_cast<double>(x[l * stride]));
  return s;
}

// sign_gemm (store) and sign_gemm_acc (y += s_out * dot) through the table of each ISA.
void check_forward(const std::vector<float>& x, std::size_t ldx, std::size_t t,
                   const BitMatrixView& w) {
  const std::size_t m = w.rows(), n = w.cols();
  const auto ref = sweep::ref_sign_gemm<float, double>(x.data(), ldx, t, w);
  std::vector<float> s_out(m);
  for (std::size_t j = 0; j < m; ++j) s_out[j] = 0.5f + static_cast<float>(j % 5) * 0.25f;
  test::for_each_isa([&](Isa isa) {
    const ProductSet k;
    REQUIRE(k.isa() == isa);
    const detail::ProductTable& table = detail::product_table(isa);
    const std::size_t ldy = m + 2, gap0 = m / 3, gap1 = (2 * m) / 3;
    std::vector<float> y(t * ldy, -5.0f), acc(t * ldy, 3.0f);
    k.sign_gemm_range(x.data(), ldx, t, w, y.data(), ldy, 0, gap0);
    k.sign_gemm_range(x.data(), ldx, t, w, y.data(), ldy, gap1, m);
    table.sign_gemm_acc_f32(x.data(), ldx, t, w, s_out.data(), acc.data(), ldy, 0, gap0);
    table.sign_gemm_acc_f32(x.data(), ldx, t, w, s_out.data(), acc.data(), ldy, gap1, m);
    // Compared in full, reported once: the first element out of bounds, if any.
    std::string bad;
    for (std::size_t i = 0; i < t && bad.empty(); ++i) {
      const double tol = sweep::tolerance(abs_sum(x.data() + i * ldx, n), n);
      for (std::size_t j = 0; j < ldy && bad.empty(); ++j) {
        const bool written = j < gap0 || (j >= gap1 && j < m);
        const float yv = y[i * ldy + j], av = acc[i * ldy + j];
        if (!written) {
          if (yv != -5.0f || av != 3.0f) bad = sweep::where(i, j, "written outside its range");
          continue;
        }
        const double r = ref[i * m + j];
        // The dot's error scaled, plus the roundings of the product and of the sum with 3.
        const double acc_tol = s_out[j] * tol + 4.0 * std::numeric_limits<float>::epsilon() * 3.0;
        if (!(std::fabs(yv - r) <= tol))
          bad = sweep::where(i, j, "sign_gemm ", yv, " vs reference ", r, " (tolerance ", tol, ")");
        else if (!(std::fabs(av - (3.0 + s_out[j] * r)) <= acc_tol))
          bad = sweep::where(i, j, "sign_gemm_acc ", av, " vs reference ", 3.0 + s_out[j] * r);
      }
    }
    INFO(bad);
    REQUIRE(bad.empty());
  });
}

// sign_gemm_transposed over [0, n) and over 64-aligned pieces leaving a gap.
void check_transposed(const std::vector<float>& z, std::size_t ldz, std::size_t t,
                      const BitMatrixView& w) {
  const std::size_t m = w.rows(), n = w.cols();
  const auto ref = sweep::ref_sign_gemm_t(z.data(), ldz, t, w);
  test::for_each_isa([&](Isa isa) {
    const ProductSet k;
    REQUIRE(k.isa() == isa);
    const std::size_t lddx = n + 5;
    // The gap [64, 128) only when n leaves a piece after it.
    const bool split = n > 128;
    std::vector<float> dx(t * lddx, -5.0f);
    if (split) {
      k.sign_gemm_transposed_range(z.data(), ldz, t, w, dx.data(), lddx, 0, 64);
      k.sign_gemm_transposed_range(z.data(), ldz, t, w, dx.data(), lddx, 128, n);
    } else {
      k.sign_gemm_transposed(z.data(), ldz, t, w, dx.data(), lddx);
    }
    std::string bad;
    for (std::size_t i = 0; i < t && bad.empty(); ++i) {
      const double tol = sweep::tolerance(abs_sum(z.data() + i * ldz, m), m);
      for (std::size_t l = 0; l < lddx && bad.empty(); ++l) {
        const bool written = l < n && (!split || l < 64 || l >= 128);
        const float v = dx[i * lddx + l];
        if (!written) {
          if (v != -5.0f) bad = sweep::where(i, l, "written outside its range");
        } else if (!(std::fabs(v - ref[i * n + l]) <= tol)) {
          bad = sweep::where(i, l, v, " vs reference ", ref[i * n + l], " (tolerance ", tol, ")");
        }
      }
    }
    INFO(bad);
    REQUIRE(bad.empty());
  });
}

}  // namespace

TEST_CASE("float sign_gemm and sign_gemm_acc equal the reference over the edge sizes",
          "[kernels_neon][float]") {
  sweep::note_when_no_neon();
  std::size_t c = 0;
  for (std::size_t n : sweep::kCols)
    for (const auto& [t, m] : sweep::shapes(n)) {
      const sweep::Values v = sweep::kValueKinds[c++ % 4];
      const BitMatrix w = test::random_bits(m, n);
      const std::size_t ldx = n + 3;
      INFO("t = " << t << ", m = " << m << ", n = " << n << ", values " << static_cast<int>(v));
      check_forward(sweep::float_rows(t, n, ldx, v), ldx, t, w);
    }
}

TEST_CASE("float sign_gemm on bit patterns, value kinds and strided views",
          "[kernels_neon][float]") {
  for (std::size_t n : sweep::kCols)
    for (sweep::Bits p : sweep::kBitKinds)
      for (sweep::Values v : sweep::kValueKinds) {
        const BitMatrix w = sweep::make_bits(7, n, p);
        const sweep::StridedBits ws(w, 8);
        INFO("n = " << n << ", bits " << sweep::bits_name(p) << ", values " << static_cast<int>(v));
        check_forward(sweep::float_rows(3, n, n + 1, v), n + 1, 3, ws.view);
      }
}

TEST_CASE("float sign_gemm_transposed equals the reference over the edge sizes",
          "[kernels_neon][float]") {
  std::size_t c = 0;
  for (std::size_t n : sweep::kCols)
    for (const auto& [t, m] : sweep::shapes(n)) {
      const sweep::Values v = sweep::kValueKinds[c++ % 4];
      const BitMatrix w = test::random_bits(m, n);
      const std::size_t ldz = m + 2;
      INFO("t = " << t << ", m = " << m << ", n = " << n << ", values " << static_cast<int>(v));
      check_transposed(sweep::float_rows(t, m, ldz, v), ldz, t, w);
    }
}

TEST_CASE("float sign_gemm_transposed on bit patterns and strided views", "[kernels_neon][float]") {
  for (std::size_t n : {std::size_t{1}, std::size_t{65}, std::size_t{513}, std::size_t{997}})
    for (sweep::Bits p : sweep::kBitKinds) {
      const BitMatrix w = sweep::make_bits(17, n, p);
      const sweep::StridedBits ws(w, 8);
      INFO("n = " << n << ", bits " << sweep::bits_name(p));
      check_transposed(sweep::float_rows(5, 17, 17, sweep::Values::normal), 17, 5, ws.view);
    }
}
