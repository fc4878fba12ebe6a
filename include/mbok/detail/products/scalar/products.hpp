#pragma once
#include "../../guard.hpp"

// Portable kernels: plain C++ with 64-bit popcount. The reference every SIMD path must match
// bit for bit on integer results, and the fallback on CPUs without a SIMD tier.

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../../base/bits.hpp"
#include "../table.hpp"
#include "dense_i8.hpp"
#include "lut_f32.hpp"
#include "lut_i8.hpp"
#include "quantize.hpp"
#include "training.hpp"

namespace mbok::detail::scalar {

inline void xnor_gemm(BitMatrixView a, BitMatrixView b, std::int32_t* c, std::size_t ldc,
                      std::size_t j0, std::size_t j1) {
  const std::size_t words = a.row_words();
  // int64: 2 * ones overflows int32 for rows past 2^30 bits (the result itself fits for
  // n <= kMaxXnorCols, checked by ProductSet).
  const auto n = static_cast<std::int64_t>(a.cols());
  for (std::size_t i = 0; i < a.rows(); ++i) {
    const std::uint64_t* ra = a.row(i);
    for (std::size_t j = j0; j < j1; ++j) {
      const std::uint64_t* rb = b.row(j);
      std::int64_t ones = 0;
      for (std::size_t w = 0; w < words; ++w) ones += popcount64(ra[w] ^ rb[w]);
      c[i * ldc + j] = static_cast<std::int32_t>(n - 2 * ones);
    }
  }
}

// sum_l x_l * s_l = sum(x) - 2 * sum_{bit set} x_l: only the -1 positions are visited, and
// store(i, j, dot) writes each result. T is the sum's type (float, or int32 for int8 x).
template <typename T, typename X, typename Store>
inline void sign_gemm_rows(const X* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                           std::size_t j0, std::size_t j1, Store&& store) {
  const std::size_t n = w.cols();
  for (std::size_t i = 0; i < t; ++i) {
    const X* xi = x + i * ldx;
    T total = 0;
    for (std::size_t l = 0; l < n; ++l) total += xi[l];
    for (std::size_t j = j0; j < j1; ++j) {
      const std::uint64_t* r = w.row(j);
      T neg = 0;
      for (std::size_t word = 0; word * 64 < n; ++word) {
        for (std::uint64_t bits = r[word]; bits != 0; bits &= bits - 1)
          neg += xi[word * 64 + static_cast<std::size_t>(__builtin_ctzll(bits))];
      }
      // Integers in int64: 2 * neg leaves int32 at n = kMaxInt8Features with x = -128
      // (the result itself fits).
      if constexpr (std::is_integral_v<T>)
        store(i, j, static_cast<T>(std::int64_t{total} - 2 * std::int64_t{neg}));
      else
        store(i, j, total - T{2} * neg);
    }
  }
}

inline void sign_gemm_f32(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w, float* y,
                          std::size_t ldy, std::size_t j0, std::size_t j1) {
  sign_gemm_rows<float>(x, ldx, t, w, j0, j1,
                        [&](std::size_t i, std::size_t j, float dot) { y[i * ldy + j] = dot; });
}

inline void sign_gemm_t_f32(const float* z, std::size_t ldz, std::size_t t, BitMatrixView w,
                            float* dx, std::size_t lddx, std::size_t l0, std::size_t l1) {
  for (std::size_t i = 0; i < t; ++i) {
    float* di = dx + i * lddx;
    for (std::size_t l = l0; l < l1; ++l) di[l] = 0.0f;
    for (std::size_t j = 0; j < w.rows(); ++j) {
      const float zij = z[i * ldz + j];
      const std::uint64_t* r = w.row(j);
      for (std::size_t l = l0; l < l1; ++l) di[l] += ((r[l / 64] >> (l % 64)) & 1u) ? -zij : zij;
    }
  }
}

inline void sign_gemm_i8(const std::int8_t* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                         std::int32_t* y, std::size_t ldy, std::size_t j0, std::size_t j1) {
  sign_gemm_rows<std::int32_t>(
      x, ldx, t, w, j0, j1,
      [&](std::size_t i, std::size_t j, std::int32_t dot) { y[i * ldy + j] = dot; });
}

inline void sign_gemm_acc_f32(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                              const float* s_out, float* y, std::size_t ldy, std::size_t j0,
                              std::size_t j1) {
  sign_gemm_rows<float>(x, ldx, t, w, j0, j1, [&](std::size_t i, std::size_t j, float dot) {
    y[i * ldy + j] += s_out[j] * dot;
  });
}

inline constexpr ProductTable make_table() noexcept {
  ProductTable t{};
  t.isa = Isa::scalar;
  t.xnor_gemm = &xnor_gemm;
  t.sign_gemm_f32 = &sign_gemm_f32;
  t.sign_gemm_t_f32 = &sign_gemm_t_f32;
  t.sign_gemm_i8 = &sign_gemm_i8;
  t.sign_gemm_acc_f32 = &sign_gemm_acc_f32;
  t.lut_layout = &lut_layout;
  t.lut_tables_i8 = &lut_tables_i8;
  t.sign_gemm_i8_lut = &sign_gemm_i8_lut;
  t.sign_gemm_i8_lut_prefill = &sign_gemm_i8_lut;
  t.lut_prefill_min_tokens = SIZE_MAX;
  t.dense_i8_f32 = &dense_i8_f32;
  t.lut_max_tokens = 8;
  t.lut_tables_f32 = &lut_tables_f32;
  t.sign_gemm_f32_lut = &sign_gemm_f32_lut;
  t.lut_f32_max_tokens = 8;  // measured: 1.4x the portable sign products at t = 1 and 8
  t.gemm_tn_f32 = &gemm_tn_f32;
  t.weight_forward_f32 = &weight_forward_f32;
  t.weight_backward_dx_f32 = &weight_backward_dx_f32;
  // Rebuilding W one row at a time is not faster than the sign products here.
  t.weight_product_min_work = SIZE_MAX;
  t.signal_rows = &signal_rows;
  t.boolean_step_rows[static_cast<int>(StepCodec::f32)] = &boolean_step_rows<StepCodec::f32>;
  t.boolean_step_rows[static_cast<int>(StepCodec::f16)] = &boolean_step_rows<StepCodec::f16>;
  t.boolean_step_rows[static_cast<int>(StepCodec::i8)] = &boolean_step_rows<StepCodec::i8>;
  t.max_abs_bits = &max_abs_bits;
  install_quantize(t);
  return t;
}

inline constexpr ProductTable kTable = make_table();

}  // namespace mbok::detail::scalar
