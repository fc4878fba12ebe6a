#pragma once
// Test data for the float kernels: weight patterns and activation kinds (adversarial ones
// included), strided bit views, and the tolerance every float comparison uses.

#include <mbok/bit_matrix.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <random>
#include <vector>

#include "support.hpp"

namespace mbok::test {

enum class Pattern { random, all_plus, all_minus, alternating_cols, alternating_rows };
inline constexpr Pattern kPatterns[] = {Pattern::random, Pattern::all_plus, Pattern::all_minus,
                                        Pattern::alternating_cols, Pattern::alternating_rows};

inline BitMatrix pattern_bits(std::size_t rows, std::size_t cols, Pattern p) {
  if (p == Pattern::random) return random_bits(rows, cols);
  Eigen::MatrixXf s(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  for (Eigen::Index i = 0; i < s.rows(); ++i)
    for (Eigen::Index j = 0; j < s.cols(); ++j) {
      bool minus = false;
      switch (p) {
        case Pattern::all_minus: minus = true; break;
        case Pattern::alternating_cols: minus = (j % 2) == 1; break;
        case Pattern::alternating_rows: minus = (i % 2) == 1; break;
        default: break;
      }
      s(i, j) = minus ? -1.0f : 1.0f;
    }
  return BitMatrix::pack(s);
}

enum class Values { normal, huge, tiny, mixed };
inline constexpr Values kValueKinds[] = {Values::normal, Values::huge, Values::tiny, Values::mixed};

// A row-major t x ld float buffer; columns >= n hold NaN, so a kernel that reads past n fails.
inline std::vector<float> activations(std::size_t t, std::size_t n, std::size_t ld, Values v) {
  std::vector<float> x(t * ld, std::numeric_limits<float>::quiet_NaN());
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t l = 0; l < n; ++l) {
      float value = dist(rng());
      switch (v) {
        case Values::huge: value *= 1e30f; break;
        case Values::tiny: value *= 1e-30f; break;
        case Values::mixed: value *= ((i + l) % 3 == 0) ? 1e20f : 1.0f; break;
        default: break;
      }
      x[i * ld + l] = value;
    }
  return x;
}

// |computed - exact| allowed for a sum of `terms` products whose absolute values sum to
// `abs_sum`: 4 (terms + 2) eps abs_sum (recursive summation bound, doubled for the orders the
// kernels use, two more roundings for the scales), plus a few smallest subnormals per term
// for sums that underflow.
inline double tolerance(double abs_sum, std::size_t terms) {
  const double eps = std::numeric_limits<float>::epsilon();
  return 4.0 * static_cast<double>(terms + 2) * eps * abs_sum +
         4.0 * static_cast<double>(terms + 1) * std::numeric_limits<float>::denorm_min();
}

// A packed copy of `b` whose rows lie `extra_words` words further apart than needed, as a
// checked view (the owner keeps the memory alive).
struct StridedBits {
  StridedBits(const BitMatrix& b, std::size_t extra_words)
      : stride(b.row_words() + extra_words),
        memory(static_cast<std::uint64_t*>(
            ::operator new(b.rows() * stride * sizeof(std::uint64_t), std::align_val_t(64)))) {
    std::memset(memory.get(), 0xA5, b.rows() * stride * sizeof(std::uint64_t));  // junk between rows
    for (std::size_t i = 0; i < b.rows(); ++i)
      std::memcpy(memory.get() + i * stride, b.view().row(i), b.row_words() * sizeof(std::uint64_t));
    view = BitMatrixView(memory.get(), b.rows(), b.cols(), stride, "strided test bits");
  }
  struct Delete {
    void operator()(std::uint64_t* p) const noexcept { ::operator delete(p, std::align_val_t(64)); }
  };
  std::size_t stride;
  std::unique_ptr<std::uint64_t, Delete> memory;
  BitMatrixView view;
};

}  // namespace mbok::test
