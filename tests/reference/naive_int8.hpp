#pragma once
// Naive references for the integer paths: element by element from the +-1 values and the
// float inputs, in double or plain int64, sharing nothing with the shipped kernels.

#include <mbok/bit_matrix.hpp>
#include <mbok/multi_kernel_weights.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mbok::test {

// The +-1 values of a bit matrix (rows x cols, row-major), read one element at a time.
inline std::vector<int> naive_signs(const BitMatrixView& m) {
  std::vector<int> s(m.rows() * m.cols());
  for (std::size_t i = 0; i < m.rows(); ++i)
    for (std::size_t j = 0; j < m.cols(); ++j) s[i * m.cols() + j] = m.sign(i, j);
  return s;
}

// C (t x m) = sum_l a(i, l) b(j, l) from precomputed signs (t x n and m x n).
inline std::vector<std::int64_t> naive_sign_dot(const std::vector<int>& a, const std::vector<int>& b,
                                                std::size_t t, std::size_t m, std::size_t n) {
  std::vector<std::int64_t> c(t * m);
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < m; ++j) {
      std::int64_t s = 0;
      for (std::size_t l = 0; l < n; ++l) s += a[i * n + l] * b[j * n + l];
      c[i * m + j] = s;
    }
  return c;
}

// Y (t x m) = X W^T for int8 X (t x n, row stride ldx) and +-1 signs of W (m x n), in int64.
inline std::vector<std::int64_t> naive_i8_gemm(const std::int8_t* x, std::size_t ldx, std::size_t t,
                                               const std::vector<int>& w, std::size_t m,
                                               std::size_t n) {
  std::vector<std::int64_t> y(t * m);
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < m; ++j) {
      std::int64_t s = 0;
      for (std::size_t l = 0; l < n; ++l) s += static_cast<std::int64_t>(x[i * ldx + l]) * w[j * n + l];
      y[i * m + j] = s;
    }
  return y;
}

// The exact float forward in double: y(i, j) = sum_k s_out_k(j) sum_l B_k(j, l) x(i, l) s_in_k(l).
inline std::vector<double> naive_multi_kernel_forward(const MultiKernelWeights<float>& w,
                                                      const float* x, std::size_t ldx,
                                                      std::size_t t) {
  const std::size_t m = w.out_features(), n = w.in_features();
  std::vector<double> y(t * m, 0.0);
  for (std::size_t k = 0; k < w.num_kernels(); ++k) {
    const std::vector<int> s = naive_signs(w.kernel_view(k));
    std::vector<double> xs(t * n);  // x (.) s_in_k
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t l = 0; l < n; ++l)
        xs[i * n + l] = static_cast<double>(x[i * ldx + l]) *
                        static_cast<double>(w.s_in(k)(static_cast<Eigen::Index>(l)));
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t j = 0; j < m; ++j) {
        double acc = 0;
        for (std::size_t l = 0; l < n; ++l) acc += xs[i * n + l] * s[j * n + l];
        y[i * m + j] += static_cast<double>(w.s_out(k)(static_cast<Eigen::Index>(j))) * acc;
      }
  }
  return y;
}

// int64 results as int32 (for comparing whole vectors with the kernels' output; every value
// in these tests fits).
inline std::vector<std::int32_t> to_int32(const std::vector<std::int64_t>& v) {
  return std::vector<std::int32_t>(v.begin(), v.end());
}

}  // namespace mbok::test
