// The fused int8 multi-kernel forward on every ISA available here, against two references:
// - the int8 reference: the same quantized inputs (the workspace's), multiplied by the +-1
//   signs in int64 and scaled in double; the only difference allowed is float rounding of
//   the scaling and the K-term sum: |err| <= 4 K eps sum_k |term_k|;
// - the exact float forward in double: the quantization bound of forward_int8.hpp,
//   |err| <= sum_k |s_out_k(j)| scale_k(i) n / 2 (+ the rounding above), and for random data
//   a mean error below 5% of the outputs' mean magnitude (about 1-2% is typical: the
//   rounding error of a token is uniform in +-scale/2 with scale = max|v| / 127).
#include <mbok/forward_int8.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "int_support.hpp"
#include "reference/naive_int8.hpp"
#include "support.hpp"

using namespace mbok;

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void check_forward(const MultiKernelWeights<float>& w, const RowMatrix& x, std::size_t t) {
  const std::size_t m = w.out_features(), n = w.in_features(),
                    ldx = static_cast<std::size_t>(x.cols());
  const std::size_t K = w.num_kernels();
  const std::vector<double> exact = test::naive_multi_kernel_forward(w, x.data(), ldx, t);
  Int8ForwardWorkspace ws;
  prepare_int8_forward(w, x.data(), ldx, t, ws);
  // The int8 reference from the workspace's quantized inputs.
  std::vector<double> ref(t * m, 0.0), abs_terms(t * m, 0.0), quant_bound(t * m, 0.0);
  for (std::size_t k = 0; k < K; ++k) {
    const QuantizedActivations& q = ws.input(k);
    const auto prod =
        test::naive_i8_gemm(q.data(), q.ld(), t, test::naive_signs(w.kernel_view(k)), m, n);
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t j = 0; j < m; ++j) {
        const double so = w.s_out(k)(static_cast<Eigen::Index>(j));
        const double term = so * q.scale(i) * static_cast<double>(prod[i * m + j]);
        ref[i * m + j] += term;
        abs_terms[i * m + j] += std::fabs(term);
        quant_bound[i * m + j] += std::fabs(so) * q.scale(i) * static_cast<double>(n) / 2;
      }
  }
  const double eps = std::numeric_limits<float>::epsilon();
  test::for_each_isa([&](Isa isa) {
    const ProductSet kernels;
    REQUIRE(kernels.isa() == isa);
    const std::size_t ldy = m + 3;
    std::vector<float> y(t * ldy, 42.0f);
    multi_kernel_forward_int8(w, x.data(), ldx, t, y.data(), ldy, kernels);
    INFO("n = " << n << ", m = " << m << ", t = " << t << ", K = " << K);
    // Counted, then asserted once per call (one assertion per element is slow under qemu).
    double err_sum = 0, mag_sum = 0;
    std::size_t over_int8_bound = 0, over_quant_bound = 0, gap_written = 0;
    for (std::size_t i = 0; i < t; ++i) {
      for (std::size_t j = 0; j < m; ++j) {
        const double yi = y[i * ldy + j];
        over_int8_bound +=
            std::fabs(yi - ref[i * m + j]) > 4 * K * eps * abs_terms[i * m + j] + 1e-30;
        over_quant_bound +=
            std::fabs(yi - exact[i * m + j]) >
            quant_bound[i * m + j] * (1 + 1e-6) + 4 * K * eps * abs_terms[i * m + j];
        err_sum += std::fabs(yi - exact[i * m + j]);
        mag_sum += std::fabs(exact[i * m + j]);
      }
      for (std::size_t j = m; j < ldy; ++j) gap_written += y[i * ldy + j] != 42.0f;
    }
    REQUIRE(over_int8_bound == 0);
    REQUIRE(over_quant_bound == 0);
    REQUIRE(gap_written == 0);
    // Only where enough outputs average out: a lone output can sit near zero.
    if (n >= 63 && t * m >= 8) REQUIRE(err_sum <= 0.05 * mag_sum);
    // The row-range entry point over two pieces gives the same floats.
    std::vector<float> y2(t * ldy, 42.0f);
    const std::size_t mid = m / 3;
    multi_kernel_forward_int8_range(w, ws, y2.data(), ldy, mid, m, kernels);
    multi_kernel_forward_int8_range(w, ws, y2.data(), ldy, 0, mid, kernels);
    REQUIRE(y2 == y);
  });
}

// The products themselves are swept in sign_i8_test.cpp; here the glue (quantization per
// kernel, scaling, the sum over K, row blocks, ranges) over a lighter sweep.
void check_sweep(std::size_t budget) {
  const std::size_t ks[] = {1, 2, 3, 5};
  std::size_t case_index = 0;
  for (std::size_t n : test::kIntCols)
    for (const auto& shape : test::int_shapes(n, budget)) {
      const std::size_t t = shape.first, m = shape.second;
      // Every K for the small shapes, one K (cycling) for the rest.
      const bool small = t * m * n <= 3000;
      for (std::size_t K : ks) {
        if (!small && ks[case_index % 4] != K) continue;
        const MultiKernelWeights<float> w =
            test::random_kernel_weights(m, n, K, test::fast_random_bits);
        const RowMatrix x = test::random_matrix(t, n + 1);  // stride n + 1
        check_forward(w, x, t);
      }
      ++case_index;
    }
}

}  // namespace

TEST_CASE("multi_kernel_forward_int8 over K, t, m and n", "[kernels_int][forward]") {
  check_sweep(30000);
}

TEST_CASE("multi_kernel_forward_int8 over larger shapes", "[kernels_int][forward][slow]") {
  check_sweep(test::kSmallBudget);
}

TEST_CASE("multi_kernel_forward_int8 over several row blocks", "[kernels_int][forward]") {
  // More output rows than one int32 block holds (256 rows at most).
  for (std::size_t t : {1, 3, 17}) {
    const MultiKernelWeights<float> w =
        test::random_kernel_weights(300, 65, 2, test::fast_random_bits);
    const RowMatrix x = test::random_matrix(t, 65);
    check_forward(w, x, t);
  }
}

TEST_CASE("multi_kernel_forward_int8 with adversarial inputs", "[kernels_int][forward]") {
  const std::size_t n = 513, m = 17, t = 3;
  for (test::BitPattern p : test::kBitPatterns) {
    MultiKernelWeights<float> w(m, n);
    w.add_kernel(test::pattern_bits(m, n, p), Eigen::VectorXf::Constant(m, 0.5f),
                 Eigen::VectorXf::Ones(n));
    w.add_kernel(test::fast_random_bits(m, n), Eigen::VectorXf::Constant(m, -0.25f),
                 Eigen::VectorXf::Constant(n, 2.0f));
    RowMatrix x(t, n);
    x.row(0).setConstant(1e30f);  // huge but finite
    x.row(1).setZero();           // an all-zero token
    for (std::size_t l = 0; l < n; ++l) x(2, static_cast<Eigen::Index>(l)) = (l % 2) ? -3.0f : 3.0f;
    check_forward(w, x, t);
  }
}

TEST_CASE("multi_kernel_forward_int8 checks its arguments", "[kernels_int][forward]") {
  const MultiKernelWeights<float> w =
      test::random_kernel_weights(8, 100, 2, test::fast_random_bits);
  RowMatrix x = test::random_matrix(2, 100);
  std::vector<float> y(16);
  REQUIRE_THROWS_AS(multi_kernel_forward_int8(w, x.data(), 99, 2, y.data(), 8), InvalidArgument);
  REQUIRE_THROWS_AS(multi_kernel_forward_int8(w, x.data(), 100, 2, y.data(), 7), InvalidArgument);
  REQUIRE_THROWS_AS(
      multi_kernel_forward_int8(MultiKernelWeights<float>(8, 100), x.data(), 100, 2, y.data(), 8),
      InvalidArgument);
  x(1, 3) = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_WITH(multi_kernel_forward_int8(w, x.data(), 100, 2, y.data(), 8),
                      test::contains("token 1 feature 3"));
  Int8ForwardWorkspace ws;
  const MultiKernelWeights<float> w3 =
      test::random_kernel_weights(8, 100, 3, test::fast_random_bits);
  x(1, 3) = 0.0f;
  prepare_int8_forward(w, x.data(), 100, 2, ws);
  REQUIRE_THROWS_WITH(multi_kernel_forward_int8_range(w3, ws, y.data(), 8, 0, 8),
                      test::contains("3"));
  REQUIRE_THROWS_AS(multi_kernel_forward_int8_range(w, ws, y.data(), 8, 4, 9), InvalidArgument);
}
