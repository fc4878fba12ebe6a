#pragma once
// Data for the integer kernel tests: the size sweep, strided copies of bit matrices with
// garbage between rows, and aligned int8 activation buffers with garbage past each row.

#include <mbok/bit_matrix.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <utility>
#include <vector>

#include "support.hpp"

namespace mbok::test {

inline const std::size_t kIntCols[] = {1, 63, 64, 65, 127, 128, 511, 512, 513, 997, 4099};

// (t, m) pairs drawn from {1, 2, 3, 7, 8, 17, 64, 65}, those with t * m * n <= budget: the
// default sweep runs everywhere (qemu included); [slow] tests repeat it with a larger budget.
inline constexpr std::size_t kSmallBudget = 300000;
inline constexpr std::size_t kLargeBudget = 3000000;
inline std::vector<std::pair<std::size_t, std::size_t>> int_shapes(std::size_t n,
                                                                   std::size_t budget) {
  const std::pair<std::size_t, std::size_t> all[] = {{1, 1}, {1, 65}, {2, 17}, {3, 8}, {7, 3},
                                                     {8, 64}, {17, 2}, {64, 7}, {65, 65}};
  std::vector<std::pair<std::size_t, std::size_t>> out;
  for (const auto& s : all)
    if (s.first * s.second * n <= budget) out.push_back(s);
  return out;
}

// Uniformly random bits (padding zero), straight from the generator: faster than packing
// random floats, which matters under qemu.
inline BitMatrix fast_random_bits(std::size_t rows, std::size_t cols) {
  BitMatrix out(rows, cols);
  const auto v = out.mutable_view();
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t w = 0; w * 64 < cols; ++w) v.row(i)[w] = rng()() & detail::used_bits_mask(cols, w);
  return out;
}

enum class BitPattern { random, all_plus, all_minus, alternating };
inline const BitPattern kBitPatterns[] = {BitPattern::random, BitPattern::all_plus,
                                          BitPattern::all_minus, BitPattern::alternating};

inline BitMatrix pattern_bits(std::size_t rows, std::size_t cols, BitPattern p) {
  switch (p) {
    case BitPattern::all_plus: return BitMatrix(rows, cols);
    case BitPattern::all_minus: return BitMatrix::pack(-Eigen::MatrixXf::Ones(rows, cols));
    case BitPattern::alternating: {
      Eigen::MatrixXf m(rows, cols);
      for (Eigen::Index i = 0; i < m.rows(); ++i)
        for (Eigen::Index j = 0; j < m.cols(); ++j) m(i, j) = ((i + j) % 2) ? -1.0f : 1.0f;
      return BitMatrix::pack(m);
    }
    case BitPattern::random: break;
  }
  return fast_random_bits(rows, cols);
}

// A copy of `src` in storage whose rows are `extra_words` (a multiple of 8) words longer than
// the padded row, the gap filled with ones: a kernel that reads past the padded row or
// ignores the stride gives wrong results.
struct StridedBits {
  StridedBits(const BitMatrixView& src, std::size_t extra_words)
      : storage(src.rows(), src.row_words() * 64 + extra_words * 64) {
    auto mv = storage.mutable_view();
    for (std::size_t i = 0; i < src.rows(); ++i) {
      std::memcpy(mv.row(i), src.row(i), src.row_words() * sizeof(std::uint64_t));
      for (std::size_t w = src.row_words(); w < mv.stride_words(); ++w) mv.row(i)[w] = ~0ull;
    }
    view = BitMatrixView(storage.data(), src.rows(), src.cols(), storage.stride_words(),
                         "strided test matrix");
  }
  BitMatrix storage;
  BitMatrixView view;
};

// t rows of int8 activations, `ld` bytes apart (ld >= padded row), 64-byte aligned: values in
// [lo, hi] up to n, zero up to the padded row, garbage (0x5a) from there to ld.
struct Int8Rows {
  Int8Rows(std::size_t t, std::size_t n, std::size_t padded, std::size_t ld_, int lo, int hi)
      : ld(ld_), bytes(std::max<std::size_t>(t * ld_, 64)),
        data(static_cast<std::int8_t*>(::operator new(bytes, std::align_val_t(64)))) {
    std::memset(data.get(), 0x5a, bytes);
    std::uniform_int_distribution<int> dist(lo, hi);
    for (std::size_t i = 0; i < t; ++i) {
      std::int8_t* r = data.get() + i * ld;
      for (std::size_t l = 0; l < padded; ++l) r[l] = l < n ? static_cast<std::int8_t>(dist(rng())) : 0;
    }
  }
  struct Free {
    void operator()(std::int8_t* p) const { ::operator delete(p, std::align_val_t(64)); }
  };
  std::size_t ld;
  std::size_t bytes;
  std::unique_ptr<std::int8_t, Free> data;
};

}  // namespace mbok::test
