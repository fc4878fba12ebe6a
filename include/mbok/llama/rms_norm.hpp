#pragma once
/// \file
/// RMSNorm as HF's `LlamaRMSNorm` computes it in float32: y = x * rsqrt(mean(x^2) + eps) * w,
/// per token (row). The mean of squares is summed in double (HF sums in float32; double is
/// at least as accurate), the scaling is in float.

#include <cmath>
#include <cstddef>

namespace mbok {
namespace llama {

/// y (t rows, `ldy` apart) = RMSNorm of x (t rows of n floats, `ldx` apart) with weight `w`
/// (n floats). x and y may be the same buffer (same stride).
inline void rms_norm(const float* x, std::size_t ldx, std::size_t t, std::size_t n, const float* w,
                     double eps, float* y, std::size_t ldy) noexcept {
  for (std::size_t i = 0; i < t; ++i) {
    const float* xi = x + i * ldx;
    float* yi = y + i * ldy;
    double ss = 0.0;
    for (std::size_t j = 0; j < n; ++j) ss += double(xi[j]) * double(xi[j]);
    const auto r = static_cast<float>(1.0 / std::sqrt(ss / double(n) + eps));
    for (std::size_t j = 0; j < n; ++j) yi[j] = w[j] * (xi[j] * r);
  }
}

}  // namespace llama
}  // namespace mbok
