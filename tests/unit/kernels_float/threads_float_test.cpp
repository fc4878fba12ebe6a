// The threaded float products give the same bits on one thread and on several, on shapes
// that parallel_for really splits (observed: test::one_and_many requires several chunks).
//
// Exact equality holds because every split is over output elements: sign_gemm and
// multi_kernel_forward split output features (columns of Y), sign_gemm_transposed splits
// columns of dX on multiples of 64. Each output element is computed by the same sequence of
// operations whatever chunk holds it: the kernels keep one accumulator per element, summed
// over the input in a fixed order, and a chunk boundary changes only which elements share a
// register tile, not the order within an element (row sums of X are recomputed per chunk, in
// the same order). So the thread count does not change the summation order, and results
// compare with ==.
#include <mbok/forward_float.hpp>
#include <mbok/products.hpp>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "float_data.hpp"
#include "support.hpp"
#include "threads_support.hpp"

using namespace mbok;

namespace {

MultiKernelWeights<float> weights(std::size_t m, std::size_t n, std::size_t kernels) {
  MultiKernelWeights<float> w(m, n);
  for (std::size_t k = 0; k < kernels; ++k)
    w.add_kernel(test::random_bits(m, n), test::random_matrix(m, 1).col(0),
                 test::random_matrix(n, 1, 0.5f).col(0));
  return w;
}

struct Shape {
  std::size_t t, m, n;
};

}  // namespace

TEST_CASE("sign_gemm (float): one thread and several give the same bits",
          "[threads][kernels_float]") {
  MBOK_REQUIRE_THREADS();
  for (const Shape& s : {Shape{7, 1300, 997}, Shape{1, 2000, 4099}, Shape{64, 100, 4099}}) {
    INFO("t = " << s.t << ", m = " << s.m << ", n = " << s.n);
    const BitMatrix w = test::random_bits(s.m, s.n);
    const std::size_t ldx = s.n + 3, ldy = s.m + 1;
    const std::vector<float> x = test::activations(s.t, s.n, ldx, test::Values::normal);
    test::for_each_isa([&](Isa isa) {
      const ProductSet k;
      REQUIRE(k.isa() == isa);
      const auto [one, many] = test::one_and_many([&] {
        std::vector<float> y(s.t * ldy, -1.0f);
        k.sign_gemm(x.data(), ldx, s.t, w, y.data(), ldy);
        return y;
      });
      REQUIRE(one == many);
    });
  }
}

TEST_CASE("sign_gemm_transposed (float): one thread and several give the same bits",
          "[threads][kernels_float]") {
  MBOK_REQUIRE_THREADS();
  for (const Shape& s : {Shape{5, 37, 4099}, Shape{1, 130, 3000}, Shape{13, 64, 2049}}) {
    INFO("t = " << s.t << ", m = " << s.m << ", n = " << s.n);
    const BitMatrix w = test::random_bits(s.m, s.n);
    const std::size_t ldz = s.m + 2, lddx = s.n + 5;
    const std::vector<float> z = test::activations(s.t, s.m, ldz, test::Values::normal);
    test::for_each_isa([&](Isa isa) {
      const ProductSet k;
      REQUIRE(k.isa() == isa);
      const auto [one, many] = test::one_and_many([&] {
        std::vector<float> dx(s.t * lddx, -1.0f);
        k.sign_gemm_transposed(z.data(), ldz, s.t, w, dx.data(), lddx);
        return dx;
      });
      REQUIRE(one == many);
    });
  }
}

TEST_CASE("multi_kernel_forward: one thread and several give the same bits",
          "[threads][kernels_float][forward]") {
  MBOK_REQUIRE_THREADS();
  struct Case {
    std::size_t t, m, n, kernels;
  };
  // The second case has more tokens than one scaled block (64).
  for (const Case& s : {Case{3, 200, 997, 2}, Case{70, 100, 300, 3}, Case{1, 1000, 513, 5}}) {
    INFO("t = " << s.t << ", m = " << s.m << ", n = " << s.n << ", K = " << s.kernels);
    const MultiKernelWeights<float> w = weights(s.m, s.n, s.kernels);
    const std::size_t ldx = s.n + 1, ldy = s.m + 2;
    const std::vector<float> x = test::activations(s.t, s.n, ldx, test::Values::normal);
    test::for_each_isa([&](Isa isa) {
      const ProductSet k;
      REQUIRE(k.isa() == isa);
      const auto [one, many] = test::one_and_many([&] {
        std::vector<float> y(s.t * ldy, -1.0f);
        multi_kernel_forward(w, x.data(), ldx, s.t, y.data(), ldy, k);
        return y;
      });
      REQUIRE(one == many);
      // The Eigen overload runs the same split.
      const RowMajorMatrixXf xe = test::random_matrix(s.t, s.n);
      const auto [one_e, many_e] = test::one_and_many([&] {
        RowMajorMatrixXf y(static_cast<Eigen::Index>(s.t), static_cast<Eigen::Index>(s.m));
        multi_kernel_forward(w, xe, y, k);
        return y;
      });
      REQUIRE(one_e.cwiseEqual(many_e).all());
    });
  }
}
