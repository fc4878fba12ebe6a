#pragma once
// Test data for the float kernels: weight patterns and activation kinds (adversarial ones
// included), strided bit views; the error bounds are in tests/float_bounds.hpp.

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

#include "float_bounds.hpp"
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
        case Pattern::all_minus:
          minus = true;
          break;
        case Pattern::alternating_cols:
          minus = (j % 2) == 1;
          break;
        case Pattern::alternating_rows:
          minus = (i % 2) == 1;
          break;
        default:
          break;
      }
      s(i, j) = minus ? -1.0f : 1.0f;
    }
  return BitMatrix::pack(s);
}

// `integers`: whole numbers in [-kIntegerMax, kIntegerMax], so that every sum of up to 2^24 /
// kIntegerMax (> 4099) of them is exact in any order and results compare with ==.
enum class Values { normal, huge, tiny, mixed, integers };
inline constexpr Values kValueKinds[] = {Values::normal, Values::huge, Values::tiny, Values::mixed,
                                         Values::integers};
inline constexpr int kIntegerMax = 1000;

// A row-major t x ld float buffer; columns >= n hold NaN, so a kernel that reads past n fails.
inline std::vector<float> activations(std::size_t t, std::size_t n, std::size_t ld, Values v,
                                      int integer_max = kIntegerMax) {
  std::vector<float> x(t * ld, std::numeric_limits<float>::quiet_NaN());
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::uniform_int_distribution<int> ints(-integer_max, integer_max);
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t l = 0; l < n; ++l) {
      float value = dist(rng());
      switch (v) {
        case Values::huge:
          value *= 1e30f;
          break;
        case Values::tiny:
          value *= 1e-30f;
          break;
        case Values::mixed:
          value *= ((i + l) % 3 == 0) ? 1e20f : 1.0f;
          break;
        case Values::integers:
          value = static_cast<float>(ints(rng()));
          break;
        default:
          break;
      }
      x[i * ld + l] = value;
    }
  return x;
}

// A packed copy of `b` whose rows lie `extra_words` words further apart than needed, as a
// checked view (the owner keeps the memory alive).
struct StridedBits {
  StridedBits(const BitMatrix& b, std::size_t extra_words)
      : stride(b.row_words() + extra_words),
        memory(static_cast<std::uint64_t*>(
            ::operator new(b.rows() * stride * sizeof(std::uint64_t), std::align_val_t(64)))) {
    std::memset(memory.get(), 0xA5,
                b.rows() * stride * sizeof(std::uint64_t));  // junk between rows
    for (std::size_t i = 0; i < b.rows(); ++i)
      std::memcpy(memory.get() + i * stride, b.view().row(i),
                  b.row_words() * sizeof(std::uint64_t));
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
