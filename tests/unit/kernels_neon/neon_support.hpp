#pragma once
// Data and references for the kernel sweep that exercises the NEON products (and, on other
// CPUs, whatever ISAs run there): edge sizes, adversarial bit patterns, strided bit views with
// garbage between rows, and dense naive references. The references expand the bits into +-1
// values once (through BitMatrixView::sign) and then multiply and add element by element, so
// they share nothing with the kernels and stay fast enough to run under an emulator.

#include <mbok/bit_matrix.hpp>
#include <mbok/isa.hpp>
#include <mbok/products.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "support.hpp"

namespace mbok::test::neon_sweep {

inline const std::size_t kCols[] = {1, 63, 64, 65, 127, 128, 511, 512, 513, 997, 4099};
inline const std::size_t kRows[] = {1, 2, 3, 7, 8, 17, 65};

// (t, m) pairs of kRows x kRows with t * m * n within a budget that keeps the sweep to seconds
// under qemu; the large leftovers add nothing the edge sizes do not already cover.
inline constexpr std::size_t kBudget = std::size_t{1} << 19;
inline std::vector<std::pair<std::size_t, std::size_t>> shapes(std::size_t n) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  for (std::size_t t : kRows)
    for (std::size_t m : kRows)
      if (t * m * n <= kBudget) out.emplace_back(t, m);
  return out;
}

enum class Bits { random, all_plus, all_minus, alternating, checker };
inline const Bits kBitKinds[] = {Bits::random, Bits::all_plus, Bits::all_minus, Bits::alternating,
                                 Bits::checker};
inline const char* bits_name(Bits b) {
  switch (b) {
    case Bits::random:
      return "random";
    case Bits::all_plus:
      return "all +1";
    case Bits::all_minus:
      return "all -1";
    case Bits::alternating:
      return "alternating columns";
    case Bits::checker:
      return "checkerboard";
  }
  return "?";
}

inline BitMatrix make_bits(std::size_t rows, std::size_t cols, Bits kind) {
  if (kind == Bits::random) return random_bits(rows, cols);
  Eigen::MatrixXf s(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  for (Eigen::Index i = 0; i < s.rows(); ++i)
    for (Eigen::Index j = 0; j < s.cols(); ++j) {
      bool minus = false;
      switch (kind) {
        case Bits::all_minus:
          minus = true;
          break;
        case Bits::alternating:
          minus = j % 2 == 1;
          break;
        case Bits::checker:
          minus = (i + j) % 2 == 1;
          break;
        default:
          break;
      }
      s(i, j) = minus ? -1.0f : 1.0f;
    }
  return BitMatrix::pack(s);
}

// +-1 values of a bit matrix, row-major rows x cols.
inline std::vector<std::int8_t> dense_signs(const BitMatrixView& m) {
  std::vector<std::int8_t> s(m.rows() * m.cols());
  for (std::size_t i = 0; i < m.rows(); ++i)
    for (std::size_t j = 0; j < m.cols(); ++j)
      s[i * m.cols() + j] = static_cast<std::int8_t>(m.sign(i, j));
  return s;
}

// A copy of `src` whose rows lie `extra_words` (a multiple of 8) words further apart than
// needed, the gap filled with ones: a kernel that ignores the stride or reads past the padded
// row gives wrong results.
struct StridedBits {
  StridedBits(const BitMatrixView& src, std::size_t extra_words)
      : stride(src.row_words() + extra_words),
        memory(static_cast<std::uint64_t*>(
            ::operator new(std::max<std::size_t>(1, src.rows() * stride) * sizeof(std::uint64_t),
                           std::align_val_t(64)))) {
    std::memset(memory.get(), 0xFF, src.rows() * stride * sizeof(std::uint64_t));
    for (std::size_t i = 0; i < src.rows(); ++i)
      std::memcpy(memory.get() + i * stride, src.row(i), src.row_words() * sizeof(std::uint64_t));
    view = BitMatrixView(memory.get(), src.rows(), src.cols(), stride, "strided test bits");
  }
  struct Delete {
    void operator()(std::uint64_t* p) const noexcept { ::operator delete(p, std::align_val_t(64)); }
  };
  std::size_t stride;
  std::unique_ptr<std::uint64_t, Delete> memory;
  BitMatrixView view;
};

// C (t x m) = sum_l a(i, l) b(j, l), exact.
inline std::vector<std::int32_t> ref_xnor(const BitMatrixView& a, const BitMatrixView& b) {
  const auto sa = dense_signs(a), sb = dense_signs(b);
  const std::size_t n = a.cols();
  std::vector<std::int32_t> c(a.rows() * b.rows());
  for (std::size_t i = 0; i < a.rows(); ++i)
    for (std::size_t j = 0; j < b.rows(); ++j) {
      std::int32_t s = 0;
      for (std::size_t l = 0; l < n; ++l) s += sa[i * n + l] * sb[j * n + l];
      c[i * b.rows() + j] = s;
    }
  return c;
}

// Y (t x m) = X (t x n, stride ldx) W^T, in int64 for int8 and in double for float, together
// with sum_l |x_l| per token (for the float tolerance).
template <typename T, typename Acc>
std::vector<Acc> ref_sign_gemm(const T* x, std::size_t ldx, std::size_t t, const BitMatrixView& w) {
  const auto sw = dense_signs(w);
  const std::size_t n = w.cols(), m = w.rows();
  std::vector<Acc> y(t * m);
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < m; ++j) {
      Acc s = 0;
      for (std::size_t l = 0; l < n; ++l) s += static_cast<Acc>(x[i * ldx + l]) * sw[j * n + l];
      y[i * m + j] = s;
    }
  return y;
}

// dX (t x n) = Z (t x m, stride ldz) W, in double.
inline std::vector<double> ref_sign_gemm_t(const float* z, std::size_t ldz, std::size_t t,
                                           const BitMatrixView& w) {
  const auto sw = dense_signs(w);
  const std::size_t n = w.cols(), m = w.rows();
  std::vector<double> dx(t * n, 0.0);
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < m; ++j) {
      const double zij = z[i * ldz + j];
      for (std::size_t l = 0; l < n; ++l) dx[i * n + l] += zij * sw[j * n + l];
    }
  return dx;
}

// |computed - exact| allowed for a float sum of `terms` products whose magnitudes add up to
// `abs_sum`: the recursive-summation bound (terms - 1) eps abs_sum, doubled for the orders
// the kernels may use and widened by the roundings of a final scale, plus a few of the
// smallest subnormals per term for sums that underflow.
inline double tolerance(double abs_sum, std::size_t terms) {
  const double eps = std::numeric_limits<float>::epsilon();
  return 4.0 * static_cast<double>(terms + 2) * eps * abs_sum +
         4.0 * static_cast<double>(terms + 1) * std::numeric_limits<float>::denorm_min();
}

enum class Values { normal, huge, tiny, integers };
inline const Values kValueKinds[] = {Values::normal, Values::huge, Values::tiny, Values::integers};

// t rows of floats, `ld` apart; columns in [n, ld) hold NaN so a kernel that reads past n
// fails. Integer values make every order of summation exact.
inline std::vector<float> float_rows(std::size_t t, std::size_t n, std::size_t ld, Values v) {
  std::vector<float> x(std::max<std::size_t>(1, t * ld), std::numeric_limits<float>::quiet_NaN());
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::uniform_int_distribution<int> ints(-1000, 1000);
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

// t rows of int8 activations, `ld` bytes apart, 64-byte aligned: values in [lo, hi] up to n,
// zero up to the padded row, garbage (0x5a) from there to ld.
struct Int8Rows {
  Int8Rows(std::size_t t, std::size_t n, std::size_t padded, std::size_t ld_, int lo, int hi)
      : ld(ld_),
        data(static_cast<std::int8_t*>(
            ::operator new(std::max<std::size_t>(t* ld_, 64), std::align_val_t(64)))) {
    std::memset(data.get(), 0x5a, std::max<std::size_t>(t * ld_, 64));
    std::uniform_int_distribution<int> dist(lo, hi);
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t l = 0; l < padded; ++l)
        data.get()[i * ld + l] = l < n ? static_cast<std::int8_t>(dist(rng())) : 0;
  }
  struct Free {
    void operator()(std::int8_t* p) const noexcept { ::operator delete(p, std::align_val_t(64)); }
  };
  std::size_t ld;
  std::unique_ptr<std::int8_t, Free> data;
};

// "row i, column j: <parts>", the message of the first mismatch a comparison finds.
template <typename... Parts>
std::string where(std::size_t i, std::size_t j, const Parts&... parts) {
  std::ostringstream out;
  out.precision(9);
  out << "row " << i << ", column " << j << ": ";
  (out << ... << parts);
  return out.str();
}

// True when this binary runs the NEON products (AArch64 build on an AArch64 CPU or emulator).
inline bool neon_here() { return isa_available(Isa::neon); }

// Called once per test file: on other CPUs the NEON-specific checks are skipped, with a note.
inline void note_when_no_neon() {
  if (!neon_here())
    WARN(
        "NEON not available in this build/CPU: only the other ISAs run this sweep; the "
        "NEON products are checked by the AArch64 cross build under qemu-aarch64");
}

}  // namespace mbok::test::neon_sweep
