// The table-lookup float product (ProductSet::sign_gemm_f32_lut) on every ISA available here,
// over the repacked weights of the int8 LUT product in both layouts (interleave4 from the
// scalar set, lanes16 from the avx2 set), against a naive double reference. Bound (the
// product's contract, detail/products/lut_f32_format.hpp): with G = ceil(n / 4) groups,
//     |y - ref| <= gamma(G + 5) (|s_out_j| sum_l |x_l s_l| + |y before|)
// plus a subnormal floor (sum_bound): gamma(G + 3) for the tabled sum, one rounding for the
// scale and one for the accumulation. Also: the tables of every ISA equal the portable ones
// bit for bit, output columns outside the range are not touched, NaN propagates, and shape
// errors throw.
#include <mbok/products.hpp>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

#include "float_bounds.hpp"
#include "float_data.hpp"
#include "support.hpp"

using namespace mbok;

namespace {

// Weights packed in each layout this build can make: interleave4 (scalar) and, with the avx2
// tier, lanes16.
std::vector<Int8LutWeights> packed_layouts(const BitMatrix& w) {
  std::vector<Int8LutWeights> out;
  out.push_back(ProductSet(Isa::scalar).prepare_lut(w));
  if (isa_available(Isa::avx2)) out.push_back(ProductSet(Isa::avx2).prepare_lut(w));
  return out;
}

struct Reference {
  std::vector<double> y, abs;  // t x m: s_out_j (x_i (.) s) . w_j and |s_out_j| sum |x_il s_l|
};

Reference reference(const std::vector<float>& x, std::size_t ldx, std::size_t t, const BitMatrix& w,
                    const std::vector<float>& s, const std::vector<float>& s_out) {
  const std::size_t m = w.rows(), n = w.cols();
  Reference r{std::vector<double>(t * m), std::vector<double>(t * m)};
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < m; ++j) {
      double dot = 0, abs = 0;
      for (std::size_t l = 0; l < n; ++l) {
        const double v = static_cast<double>(x[i * ldx + l]) * (s.empty() ? 1.0 : s[l]);
        dot += v * w.view().sign(j, l);
        abs += std::fabs(v);
      }
      const double so = s_out.empty() ? 1.0 : s_out[j];
      r.y[i * m + j] = so * dot;
      r.abs[i * m + j] = std::fabs(so) * abs;
    }
  return r;
}

double lut_bound(double abs_sum, std::size_t n) {
  return test::sum_bound(abs_sum, (n + 3) / 4 + 5);
}

// Runs the product over [j0, j1) (whole: the parallel form) with y starting at `before`
// (ldy = m + 3) and checks every element.
void check(const ProductSet& k, const FloatLutTables& tables, const Int8LutWeights& pw,
           const Reference& ref, std::size_t t, const std::vector<float>& s_out, bool accumulate,
           std::size_t j0, std::size_t j1) {
  const std::size_t m = pw.rows(), n = pw.cols(), ldy = m + 3;
  const float before = 0.75f;
  std::vector<float> y(t * ldy, before);
  const float* so = s_out.empty() ? nullptr : s_out.data();
  if (j0 == 0 && j1 == m)
    k.sign_gemm_f32_lut(tables, pw, y.data(), ldy, so, accumulate);
  else
    k.sign_gemm_f32_lut_range(tables, pw, y.data(), ldy, j0, j1, so, accumulate);
  INFO(isa_name(k.isa()) << ", layout " << static_cast<int>(pw.view().layout) << ": n = " << n
                         << ", m = " << m << ", t = " << t << ", rows [" << j0 << ", " << j1
                         << "), accumulate " << accumulate << ", s_out " << !s_out.empty());
  std::size_t bad = 0;
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < ldy; ++j) {
      const double got = y[i * ldy + j];
      if (j < j0 || j >= j1) {
        bad += got != before;
        continue;
      }
      const double want = ref.y[i * m + j] + (accumulate ? before : 0.0);
      const double abs = ref.abs[i * m + j] + (accumulate ? before : 0.0);
      if (!(std::fabs(got - want) <= lut_bound(abs, n))) {
        if (bad == 0)
          UNSCOPED_INFO("token " << i << ", row " << j << ": " << got << " vs " << want);
        ++bad;
      }
    }
  REQUIRE(bad == 0);
}

void sweep(std::size_t budget) {
  const std::size_t cols[] = {1, 3, 4, 5, 31, 32, 33, 63, 100, 513, 1000};
  const std::size_t rows[] = {1, 7, 15, 16, 17, 33, 130};
  const std::size_t tokens[] = {1, 2, 3, 5, 9};
  for (std::size_t n : cols)
    for (std::size_t m : rows)
      for (std::size_t t : tokens) {
        if (t * m * n > budget && t != 1 && m != 1) continue;
        const BitMatrix w = test::random_bits(m, n);
        const std::size_t ldx = n + 5;
        const std::vector<float> x = test::activations(t, n, ldx, test::Values::normal);
        const std::vector<float> s = test::activations(1, n, n, test::Values::normal);
        const std::vector<float> s_out = test::activations(1, m, m, test::Values::normal);
        const Reference ref = reference(x, ldx, t, w, s, s_out);
        const std::vector<Int8LutWeights> packed = packed_layouts(w);
        test::for_each_isa([&](Isa) {
          const ProductSet k;
          FloatLutTables tables;
          k.build_lut_tables_f32(x.data(), ldx, t, n, s.data(), tables);
          for (const Int8LutWeights& pw : packed) check(k, tables, pw, ref, t, s_out, false, 0, m);
        });
      }
}

}  // namespace

TEST_CASE("sign_gemm_f32_lut is within its bound over the edge sizes, both layouts",
          "[kernels_float][lut]") {
  sweep(40000);
}

TEST_CASE("sign_gemm_f32_lut over every size combination", "[kernels_float][lut][slow]") {
  sweep(std::numeric_limits<std::size_t>::max());
}

TEST_CASE("sign_gemm_f32_lut with value kinds, patterns, scales, accumulation and ranges",
          "[kernels_float][lut]") {
  for (std::size_t n : {5u, 64u, 997u})
    for (test::Values v : test::kValueKinds)
      for (test::Pattern p : test::kPatterns) {
        const std::size_t t = 3, m = 37, ldx = n + 1;
        const BitMatrix w = test::pattern_bits(m, n, p);
        const std::vector<float> x = test::activations(t, n, ldx, v);
        const std::vector<float> s = test::activations(1, n, n, test::Values::normal);
        const std::vector<float> s_out = test::activations(1, m, m, test::Values::normal);
        const std::vector<Int8LutWeights> packed = packed_layouts(w);
        for (const bool scaled : {false, true}) {
          const std::vector<float> none;
          const Reference ref = reference(x, ldx, t, w, scaled ? s : none, scaled ? s_out : none);
          test::for_each_isa([&](Isa) {
            const ProductSet k;
            FloatLutTables tables;
            k.build_lut_tables_f32(x.data(), ldx, t, n, scaled ? s.data() : nullptr, tables);
            for (const Int8LutWeights& pw : packed)
              for (const bool acc : {false, true}) {
                const std::vector<float>& so = scaled ? s_out : none;
                check(k, tables, pw, ref, t, so, acc, 0, m);
                check(k, tables, pw, ref, t, so, acc, 3, 20);   // inside tiles 0 and 1
                check(k, tables, pw, ref, t, so, acc, 17, 33);  // inside tiles 1 and 2
                check(k, tables, pw, ref, t, so, acc, 5, 9);    // inside one tile
                check(k, tables, pw, ref, t, so, acc, 32, 37);  // the last, partial tile
                check(k, tables, pw, ref, t, so, acc, 16, 16);  // empty
              }
          });
        }
      }
}

TEST_CASE("every ISA builds the portable float tables bit for bit", "[kernels_float][lut]") {
  for (std::size_t n : {1u, 5u, 17u, 33u, 64u, 100u, 513u}) {
    const std::size_t t = 3, ldx = n + 2, ld = detail::lut_f32_table_floats(n);
    const std::vector<float> x = test::activations(t, n, ldx, test::Values::mixed);
    const std::vector<float> s = test::activations(1, n, n, test::Values::normal);
    for (const bool scaled : {false, true}) {
      std::vector<float> want(t * ld);
      detail::scalar::lut_tables_f32(x.data(), ldx, t, n, scaled ? s.data() : nullptr, want.data(),
                                     ld);
      test::for_each_isa([&](Isa) {
        const ProductSet k;
        FloatLutTables got;
        k.build_lut_tables_f32(x.data(), ldx, t, n, scaled ? s.data() : nullptr, got);
        INFO("n = " << n << ", scaled " << scaled);
        REQUIRE(got.view().ld == ld);
        REQUIRE(std::memcmp(got.view().data, want.data(), t * ld * sizeof(float)) == 0);
      });
    }
  }
}

TEST_CASE("sign_gemm_f32_lut propagates NaN and rejects bad shapes", "[kernels_float][lut]") {
  const std::size_t m = 20, n = 100, t = 2;
  const BitMatrix w = test::random_bits(m, n);
  std::vector<float> x = test::activations(t, n, n, test::Values::normal);
  x[n + 37] = std::numeric_limits<float>::quiet_NaN();  // token 1
  test::for_each_isa([&](Isa) {
    const ProductSet k;
    for (const Int8LutWeights& pw : packed_layouts(w)) {
      FloatLutTables tables;
      k.build_lut_tables_f32(x.data(), n, t, n, nullptr, tables);
      std::vector<float> y(t * m, 0.0f);
      k.sign_gemm_f32_lut(tables, pw, y.data(), m);
      for (std::size_t j = 0; j < m; ++j) {
        CHECK(std::isfinite(y[j]));
        CHECK(std::isnan(y[m + j]));
      }
      REQUIRE_THROWS_AS(k.sign_gemm_f32_lut(tables, pw, y.data(), m - 1), InvalidArgument);
      REQUIRE_THROWS_AS(k.sign_gemm_f32_lut_range(tables, pw, y.data(), m, 3, m + 1),
                        InvalidArgument);
      REQUIRE_THROWS_AS(k.sign_gemm_f32_lut(tables, pw, nullptr, m), InvalidArgument);
      FloatLutTables other;
      k.build_lut_tables_f32(x.data(), n, t, n - 1, nullptr, other);
      REQUIRE_THROWS_AS(k.sign_gemm_f32_lut(other, pw, y.data(), m), InvalidArgument);
      REQUIRE_THROWS_AS(k.build_lut_tables_f32(x.data(), n - 1, t, n, nullptr, other),
                        InvalidArgument);
      REQUIRE_THROWS_AS(k.build_lut_tables_f32(nullptr, n, t, n, nullptr, other), InvalidArgument);
    }
  });
}
