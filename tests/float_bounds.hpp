#pragma once
// Error bounds for the float products, derived from how the kernels sum.
//
// Notation (Higham, Accuracy and Stability of Numerical Algorithms, ch. 3): u = 2^-24 is the
// unit roundoff of float (FLT_EPSILON / 2), gamma(k) = k u / (1 - k u). A sum of n terms
// computed in any order (recursive, pairwise, in SIMD lanes folded at the end) where each
// term takes part in at most k roundings is within gamma(k) sum |terms| of the exact sum; as
// adding an exact zero (an empty lane, a zeroed accumulator) does not round, k <= n - 1
// whatever the order. Bounds combine as gamma(j) + gamma(k) + gamma(j) gamma(k) <= gamma(j + k)
// and (1 + u) (1 + gamma(k)) <= 1 + gamma(k + 1).
//
// How the kernels compute y = sum_l x_l w_l, w_l = +-1, S = sum |x_l|:
// - scalar and avx512: y = T - 2 N, T = sum of all x_l, N = sum of the x_l with w_l = -1.
//   |T' - T| <= gamma(n - 1) S, |N' - N| <= gamma(n - 1) S, the final subtraction rounds once
//   (or not at all under FMA), so |y' - y| <= 3 gamma(n - 1) S + u (1 + 3 gamma(n - 1)) S
//   <= gamma(3n - 2) S;
// - avx2 and neon: y = sum of the x_l with their sign bit flipped, |y' - y| <= gamma(n - 1) S.
// The same holds for the transposed product with m (the output rows) in place of n. So one
// product is within gamma(3n - 2) S; each rounding after it (a scale, an accumulation) adds
// one to the index:
// - accumulate form y += s y_kernel: gamma(3n) (|s| S + |y before|);
// - fused forward, K kernels: x_l s_in_l rounds once per term (+1, and +2 for the -2N side,
//   already inside the 3n), y_kernel s_out rounds once, and the K products are added to a
//   zeroed output (K - 1 roundings): gamma(3n + K + 1) sum_k |s_out_k| sum_l |x_l s_in_k,l|.
// Integer-valued inputs whose partial sums stay below 2^24 are exact in every order: tests
// compare those with ==.
// Products that underflow add at most half the smallest subnormal each; `floor` covers them.

#include <cstddef>
#include <limits>

namespace mbok::test {

inline double unit_roundoff() { return std::numeric_limits<float>::epsilon() / 2.0; }

inline double gamma(std::size_t k) {
  const double ku = static_cast<double>(k) * unit_roundoff();
  return ku / (1.0 - ku);
}

// gamma(k) abs_sum plus one smallest subnormal per rounding.
inline double sum_bound(double abs_sum, std::size_t k) {
  return gamma(k) * abs_sum + static_cast<double>(k + 1) * std::numeric_limits<float>::denorm_min();
}

// One product of n terms (sign_gemm, sign_gemm_transposed with n = m).
inline double product_bound(double abs_sum, std::size_t n) {
  return sum_bound(abs_sum, n == 0 ? 0 : 3 * n - 2);
}

// y += s * product: abs_sum = |s| S + |y before|.
inline double accumulate_bound(double abs_sum, std::size_t n) { return sum_bound(abs_sum, 3 * n); }

// The fused forward of K kernels: abs_sum = sum_k |s_out_k| sum_l |x_l s_in_k,l|.
inline double forward_bound(double abs_sum, std::size_t n, std::size_t kernels) {
  return sum_bound(abs_sum, 3 * n + kernels + 1);
}

}  // namespace mbok::test
