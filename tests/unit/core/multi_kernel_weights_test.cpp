// The multi-kernel container: reconstruction, error and cost figures, bad input.
#include <mbok/multi_kernel_weights.hpp>

#include <limits>

#include "support.hpp"

using namespace mbok;

TEST_CASE("reconstruction is sum_k B_k (.) s_out_k s_in_k^T", "[multi_kernel]") {
  const std::size_t m = 7, n = 65;
  MultiKernelWeights<float> w(m, n);
  Eigen::MatrixXf expected = Eigen::MatrixXf::Zero(m, n);
  for (int k = 0; k < 3; ++k) {
    const Eigen::MatrixXf signs = BitMatrix::pack(test::random_matrix(m, n)).to_signs();
    const Eigen::VectorXf so = Eigen::VectorXf::Random(m).cwiseAbs();
    const Eigen::VectorXf si = Eigen::VectorXf::Random(n).cwiseAbs();
    w.add_kernel(BitMatrix::pack(signs), so, si);
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) expected(i, j) += signs(i, j) * so(i) * si(j);
    CHECK(w.num_kernels() == static_cast<std::size_t>(k + 1));
  }
  CHECK(w.reconstruct().isApprox(expected, 1e-6f));
  CHECK(w.relative_error(expected) < 1e-6);
  CHECK(w.relative_error(expected, 2) > 1e-3);  // first two kernels only
  CHECK(w.kernel_view(1).rows() == m);
  CHECK(w.kernel_view(1).cols() == n);
}

TEST_CASE("double scales are supported", "[multi_kernel]") {
  MultiKernelWeights<double> w(3, 4);
  w.add_kernel(BitMatrix(3, 4), Eigen::VectorXd::Constant(3, 2.0), Eigen::VectorXd::Constant(4, 0.5));
  CHECK(w.reconstruct().isApprox(Eigen::MatrixXd::Ones(3, 4)));
}

TEST_CASE("bits per weight counts the kernels and the scales", "[multi_kernel]") {
  MultiKernelWeights<float> w(4096, 4096);
  w.add_kernel(BitMatrix(4096, 4096), Eigen::VectorXf::Ones(4096), Eigen::VectorXf::Ones(4096));
  w.add_kernel(BitMatrix(4096, 4096), Eigen::VectorXf::Ones(4096), Eigen::VectorXf::Ones(4096));
  // 2 bits + 2 * 8192 floats * 32 bits / 4096^2 weights
  CHECK(w.bits_per_weight() == Approx(2.0 + 2.0 * 8192 * 32 / (4096.0 * 4096.0)));
}

TEST_CASE("bad kernels, shapes and indices raise errors naming them", "[multi_kernel][errors]") {
  CHECK_THROWS_AS(MultiKernelWeights<float>(0, 3), InvalidArgument);
  MultiKernelWeights<float> w(3, 4);
  CHECK_THROWS_WITH(w.add_kernel(BitMatrix(4, 3), Eigen::VectorXf::Ones(3), Eigen::VectorXf::Ones(4)),
                    test::contains("expected 3 x 4 bits, got 4 x 3"));
  CHECK_THROWS_WITH(w.add_kernel(BitMatrix(3, 4), Eigen::VectorXf::Ones(2), Eigen::VectorXf::Ones(4)),
                    test::contains("s_out must have 3 entries, got 2"));
  Eigen::VectorXf bad = Eigen::VectorXf::Ones(4);
  bad(2) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(w.add_kernel(BitMatrix(3, 4), Eigen::VectorXf::Ones(3), bad),
                    test::contains("s_in is not finite"));
  CHECK(w.num_kernels() == 0);
  CHECK_THROWS_WITH(w.kernel(0), test::contains("kernel 0 does not exist (K = 0)"));
  CHECK_THROWS_AS(w.relative_error(Eigen::MatrixXf::Zero(3, 4)), InvalidArgument);
  CHECK_THROWS_AS(w.relative_error(Eigen::MatrixXf::Ones(4, 4)), InvalidArgument);
}
