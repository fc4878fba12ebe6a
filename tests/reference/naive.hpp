#pragma once
// Naive references of the Boolean products: element by element from the +-1 values, with no
// bit tricks, so they share nothing with the shipped kernels. Float results accumulate in
// double.

#include <mbok/bit_matrix.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mbok::test {

inline int naive_sign(const BitMatrixView& m, std::size_t i, std::size_t j) {
  return m.sign(i, j);
}

// C (a.rows x b.rows) = sum_l a(i,l) b(j,l)
inline std::vector<std::int32_t> naive_xnor_gemm(const BitMatrixView& a, const BitMatrixView& b) {
  std::vector<std::int32_t> c(a.rows() * b.rows());
  for (std::size_t i = 0; i < a.rows(); ++i)
    for (std::size_t j = 0; j < b.rows(); ++j) {
      std::int32_t s = 0;
      for (std::size_t l = 0; l < a.cols(); ++l) s += naive_sign(a, i, l) * naive_sign(b, j, l);
      c[i * b.rows() + j] = s;
    }
  return c;
}

// Y (t x m) = X (t x n, row-major, stride ldx) W^T, in double.
template <typename T>
std::vector<double> naive_sign_gemm(const T* x, std::size_t ldx, std::size_t t,
                                    const BitMatrixView& w) {
  std::vector<double> y(t * w.rows());
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < w.rows(); ++j) {
      double s = 0;
      for (std::size_t l = 0; l < w.cols(); ++l)
        s += static_cast<double>(x[i * ldx + l]) * naive_sign(w, j, l);
      y[i * w.rows() + j] = s;
    }
  return y;
}

// dX (t x n) = Z (t x m, stride ldz) W, in double.
inline std::vector<double> naive_sign_gemm_transposed(const float* z, std::size_t ldz,
                                                      std::size_t t, const BitMatrixView& w) {
  std::vector<double> dx(t * w.cols(), 0.0);
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t l = 0; l < w.cols(); ++l) {
      double s = 0;
      for (std::size_t j = 0; j < w.rows(); ++j)
        s += static_cast<double>(z[i * ldz + j]) * naive_sign(w, j, l);
      dx[i * w.cols() + l] = s;
    }
  return dx;
}

}  // namespace mbok::test
