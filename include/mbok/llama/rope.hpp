#pragma once
/// \file
/// Rotary position embedding with HF's rotate-half convention: for a head vector x of
/// head_dim d (half = d / 2) at position p, with a_i = p * inv_freq[i] (i < half),
///     y[i]        = x[i] cos a_i - x[i + half] sin a_i
///     y[i + half] = x[i + half] cos a_i + x[i] sin a_i.
/// inv_freq comes from `LlamaConfig::rope_inverse_frequencies()` (scaling included). Angles,
/// cosines and sines are computed in double and rounded to float (HF computes them in
/// float32; double is at least as accurate), the rotation in float.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "config.hpp"

namespace mbok {
namespace llama {

/// The rotation of one model (its inverse frequencies). Immutable; thread-safe.
class Rope {
 public:
  Rope() = default;
  explicit Rope(const LlamaConfig& config)
      : inv_freq_(config.rope_inverse_frequencies()),
        head_dim_(static_cast<std::size_t>(config.head_dim)) {}

  std::size_t head_dim() const noexcept { return head_dim_; }

  /// Fills cs[0, half) with cos and cs[half, d) with sin of position `pos`'s angles
  /// (cs has head_dim floats).
  void angles(std::int64_t pos, float* cs) const noexcept {
    const std::size_t half = head_dim_ / 2;
    for (std::size_t i = 0; i < half; ++i) {
      const double a = double(pos) * inv_freq_[i];
      cs[i] = static_cast<float>(std::cos(a));
      cs[half + i] = static_cast<float>(std::sin(a));
    }
  }

  /// Rotates `heads` consecutive head vectors at x (heads * head_dim floats) by the angles
  /// in cs (from `angles`).
  void rotate(float* x, std::size_t heads, const float* cs) const noexcept {
    const std::size_t half = head_dim_ / 2;
    const float* c = cs;
    const float* s = cs + half;
    for (std::size_t h = 0; h < heads; ++h) {
      float* x1 = x + h * head_dim_;
      float* x2 = x1 + half;
      for (std::size_t i = 0; i < half; ++i) {
        const float a = x1[i], b = x2[i];
        x1[i] = a * c[i] - b * s[i];
        x2[i] = b * c[i] + a * s[i];
      }
    }
  }

 private:
  std::vector<double> inv_freq_;
  std::size_t head_dim_ = 0;
};

}  // namespace llama
}  // namespace mbok
