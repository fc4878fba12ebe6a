// The fused float forward over prepared weights (multi_kernel_forward with
// Int8PreparedWeights) on every ISA available here, against the naive double reference: the
// table lookup within its stated bound (forward_float.hpp: gamma(ceil(n / 4) + K + 3)
// sum_k |s_out_k[j]| sum_l |x_l s_in_k[l]| plus a subnormal floor), over edge sizes, K = 0..3,
// ranges, the detail form that takes only the scales and the repacked weights, the choice of
// `automatic`, NaN, and shape errors.
#include <mbok/forward_float.hpp>

#include <cmath>
#include <cstddef>
#include <vector>

#include "float_bounds.hpp"
#include "float_data.hpp"
#include "reference/naive_forward.hpp"
#include "support.hpp"

using namespace mbok;

namespace {

MultiKernelWeights<float> weights(std::size_t m, std::size_t n, std::size_t kernels) {
  MultiKernelWeights<float> w(m, n);
  for (std::size_t k = 0; k < kernels; ++k)
    w.add_kernel(test::random_bits(m, n), test::random_matrix(m, 1).col(0),
                 test::random_matrix(n, 1, 0.5f).col(0));
  return w;
}

// y (t x ldy) against the reference on [j0, j1); `untouched` elsewhere.
void check(const MultiKernelWeights<float>& w, const std::vector<float>& x, std::size_t ldx,
           std::size_t t, const std::vector<float>& y, std::size_t ldy, std::size_t j0,
           std::size_t j1, float untouched) {
  const std::size_t m = w.out_features(), n = w.in_features(), k = w.num_kernels();
  std::vector<double> bound;
  const auto ref = test::naive_multi_kernel_forward(w, x.data(), ldx, t, &bound);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < ldy; ++j) {
      const double got = y[i * ldy + j];
      const bool ok = j >= j0 && j < j1 ? std::fabs(got - ref[i * m + j]) <=
                                              test::sum_bound(bound[i * m + j], (n + 3) / 4 + k + 3)
                                        : got == untouched;
      if (!ok && bad++ == 0)
        UNSCOPED_INFO("token " << i << ", output " << j << ": " << got << " vs "
                               << (j < m ? ref[i * m + j] : 0.0));
    }
  INFO("m = " << m << ", n = " << n << ", K = " << k << ", t = " << t << ", range [" << j0 << ", "
              << j1 << ")");
  REQUIRE(bad == 0);
}

}  // namespace

TEST_CASE("the float forward over prepared weights is within its bound", "[forward_float][lut]") {
  struct Case {
    std::size_t m, n;
  };
  const Case cases[] = {{1, 1}, {7, 5}, {16, 31}, {17, 32}, {33, 33}, {50, 100}, {130, 513}};
  for (const Case& c : cases)
    for (std::size_t kernels : {0u, 1u, 2u, 3u})
      for (std::size_t t : {1u, 2u, 3u, 5u}) {
        const MultiKernelWeights<float> w = weights(c.m, c.n, kernels);
        const std::size_t ldx = c.n + 3, ldy = c.m + 2;
        const std::vector<float> x = test::activations(t, c.n, ldx, test::Values::normal);
        test::for_each_isa([&](Isa) {
          const ProductSet ks;
          const Int8PreparedWeights pw(w, ks);
          std::vector<float> y(t * ldy, -7.0f);
          multi_kernel_forward(w, pw, x.data(), ldx, t, y.data(), ldy, FloatAlgorithm::lut);
          for (std::size_t i = 0; i < t; ++i)  // the padding columns stay untouched
            for (std::size_t j = c.m; j < ldy; ++j) REQUIRE(y[i * ldy + j] == -7.0f);
          for (std::size_t i = 0; i < t; ++i)
            for (std::size_t j = c.m; j < ldy; ++j) y[i * ldy + j] = -7.0f;
          check(w, x, ldx, t, y, ldy, 0, c.m, -7.0f);
          // A range inside tiles, on the calling thread.
          const std::size_t j0 = c.m / 3, j1 = c.m - c.m / 4;
          std::vector<float> r(t * ldy, -7.0f);
          multi_kernel_forward_range(w, pw, x.data(), ldx, t, r.data(), ldy, j0, j1,
                                     FloatAlgorithm::lut);
          check(w, x, ldx, t, r, ldy, j0, j1, -7.0f);
          // The detail form: only the scales and the repacked weights.
          std::vector<const float*> so, si;
          std::vector<detail::LutWeightsView> views;
          for (std::size_t k = 0; k < kernels; ++k) {
            so.push_back(w.s_out(k).data());
            si.push_back(w.s_in(k).data());
            views.push_back(pw.kernel(k).view());
          }
          std::vector<float> d(t * ldy, -7.0f);
          detail::lut_forward_f32(ks.table(), kernels, so.data(), si.data(), views.data(), c.m,
                                  x.data(), ldx, t, d.data(), ldy);
          REQUIRE(d == y);
        });
      }
}

TEST_CASE("the float forward over prepared weights picks the LUT product for few tokens",
          "[forward_float][lut]") {
  const std::size_t m = 40, n = 70;
  const MultiKernelWeights<float> w = weights(m, n, 2);
  test::for_each_isa([&](Isa) {
    const ProductSet ks;
    const Int8PreparedWeights pw(w, ks);
    for (std::size_t t : {std::size_t{1}, ks.lut_f32_max_tokens(), ks.lut_f32_max_tokens() + 1}) {
      if (t == 0) continue;
      const std::vector<float> x = test::activations(t, n, n, test::Values::normal);
      std::vector<float> a(t * m), lut(t * m), other(t * m);
      multi_kernel_forward(w, pw, x.data(), n, t, a.data(), m);
      multi_kernel_forward(w, pw, x.data(), n, t, lut.data(), m, FloatAlgorithm::lut);
      multi_kernel_forward(w, x.data(), n, t, other.data(), m, ks);  // without pw
      INFO("t = " << t << ", lut_f32_max_tokens " << ks.lut_f32_max_tokens());
      REQUIRE(a == (t <= ks.lut_f32_max_tokens() ? lut : other));
      check(w, x, n, t, a, m, 0, m, 0.0f);
    }
  });
}

TEST_CASE("the float forward over prepared weights propagates NaN and rejects bad shapes",
          "[forward_float][lut]") {
  const std::size_t m = 20, n = 45, t = 2;
  const MultiKernelWeights<float> w = weights(m, n, 2);
  std::vector<float> x = test::activations(t, n, n, test::Values::normal);
  x[n + 44] = std::numeric_limits<float>::quiet_NaN();  // token 1, the last feature
  test::for_each_isa([&](Isa) {
    const ProductSet ks;
    const Int8PreparedWeights pw(w, ks);
    // Room past t x m: GCC sees the rejected range's writes as reachable (-Warray-bounds).
    std::vector<float> y(t * m + 16);
    multi_kernel_forward(w, pw, x.data(), n, t, y.data(), m, FloatAlgorithm::lut);
    for (std::size_t j = 0; j < m; ++j) {
      CHECK(std::isfinite(y[j]));
      CHECK(std::isnan(y[m + j]));
    }
    const Int8PreparedWeights other(weights(m, n + 1, 2), ks);
    REQUIRE_THROWS_AS(multi_kernel_forward(w, other, x.data(), n, t, y.data(), m), InvalidArgument);
    const Int8PreparedWeights fewer(weights(m, n, 1), ks);
    REQUIRE_THROWS_AS(multi_kernel_forward(w, fewer, x.data(), n, t, y.data(), m), InvalidArgument);
    REQUIRE_THROWS_AS(multi_kernel_forward(w, pw, x.data(), n - 1, t, y.data(), m),
                      InvalidArgument);
    REQUIRE_THROWS_AS(multi_kernel_forward(w, pw, x.data(), n, t, y.data(), m - 1),
                      InvalidArgument);
    REQUIRE_THROWS_AS(multi_kernel_forward(w, pw, nullptr, n, t, y.data(), m), InvalidArgument);
    REQUIRE_THROWS_AS(multi_kernel_forward_range(w, pw, x.data(), n, t, y.data(), m, 5, m + 1),
                      InvalidArgument);
    REQUIRE_THROWS_AS(multi_kernel_forward(w, x.data(), n, t, y.data(), m, ks, FloatAlgorithm::lut),
                      InvalidArgument);
  });
}
