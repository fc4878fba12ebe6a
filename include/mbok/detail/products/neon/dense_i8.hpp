#pragma once
#include "../../guard.hpp"

// neon: dense int8 weights with row scales x float activations (table entry dense_i8_f32):
// each 8 weights widened (SXTL twice, SCVTF) and multiplied into float accumulators, four rows
// at a time with two chains each.

#include <arm_neon.h>

#include <cstddef>
#include <cstdint>

#include "../table.hpp"

#include "begin.hpp"

namespace mbok::detail::neon {

// y[i * ldy + r] = s[r] * dot(q row r, x row i) for R rows starting at q, every token i.
template <int R>
inline void dense_i8_rows(const std::int8_t* q, std::size_t ldq, const float* s, std::size_t n,
                          const float* x, std::size_t ldx, std::size_t t, float* y,
                          std::size_t ldy) {
  const std::size_t body = n / 8 * 8;
  for (std::size_t i = 0; i < t; ++i) {
    const float* xi = x + i * ldx;
    float32x4_t acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = vdupq_n_f32(0.0f);
    for (std::size_t l = 0; l < body; l += 8) {
      const float32x4_t x0 = vld1q_f32(xi + l), x1 = vld1q_f32(xi + l + 4);
      for (int r = 0; r < R; ++r) {
        const int16x8_t w = vmovl_s8(vld1_s8(q + static_cast<std::size_t>(r) * ldq + l));
        acc[r][0] = vfmaq_f32(acc[r][0], vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))), x0);
        acc[r][1] = vfmaq_f32(acc[r][1], vcvtq_f32_s32(vmovl_s16(vget_high_s16(w))), x1);
      }
    }
    for (int r = 0; r < R; ++r) {
      const std::int8_t* row = q + static_cast<std::size_t>(r) * ldq;
      float tail = 0.0f;
      for (std::size_t l = body; l < n; ++l) tail += static_cast<float>(row[l]) * xi[l];
      y[i * ldy + static_cast<std::size_t>(r)] =
          s[r] * (vaddvq_f32(vaddq_f32(acc[r][0], acc[r][1])) + tail);
    }
  }
}

#include "../generic/dense_i8.hpp"

}  // namespace mbok::detail::neon

#include "end.hpp"
