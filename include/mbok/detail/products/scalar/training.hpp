#pragma once
#include "../../guard.hpp"

// Portable products of the training step: the entries every ISA's table starts from, and the
// reference the vectorized optimizer step matches bit for bit. The dense product is Eigen's;
// the weight products rebuild one row of W at a time (no ISA picks them by default: see
// kTable's weight_product_min_work).

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../../../parallel.hpp"
#include "../../base/bits.hpp"
#include "../../base/float16.hpp"
#include "../boolean_step_args.hpp"
#include "../weight_panels.hpp"

namespace mbok::detail::scalar {

inline void gemm_tn_f32(const float* a, std::size_t lda, const float* b, std::size_t ldb,
                        std::size_t t, std::size_t m, std::size_t n, float* c, std::size_t ldc) {
  using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Map = Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>>;
  using ConstMap = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
  const auto index = [](std::size_t v) { return static_cast<Eigen::Index>(v); };
  Map cm(c, index(m), index(n), Eigen::OuterStride<>(index(ldc)));
  const ConstMap am(a, index(t), index(m), Eigen::OuterStride<>(index(lda)));
  const ConstMap bm(b, index(t), index(n), Eigen::OuterStride<>(index(ldb)));
  cm.noalias() = am.transpose() * bm;
}

// W(i, l) for l in [l0, l1) into out[l - l0].
inline void weight_row(const SignKernels& w, std::size_t i, std::size_t l0, std::size_t l1,
                       float* out) {
  for (std::size_t l = l0; l < l1; ++l) out[l - l0] = 0.0f;
  for (std::size_t k = 0; k < w.count; ++k) {
    const std::uint64_t* bits = w.bits[k] + i * w.stride[k];
    const float so = w.s_out[k][i];
    for (std::size_t l = l0; l < l1; ++l) {
      const float v = so * w.s_in[k][l];
      out[l - l0] += ((bits[l / 64] >> (l % 64)) & 1u) ? -v : v;
    }
  }
}

inline void weight_forward_f32(const SignKernels& w, std::size_t m, std::size_t n, const float* x,
                               std::size_t ldx, std::size_t t, float* y, std::size_t ldy) {
  parallel_for(0, m, std::max<std::size_t>(1, 4096 / n), [&](std::size_t i0, std::size_t i1) {
    std::vector<float> row(n);
    for (std::size_t i = i0; i < i1; ++i) {
      weight_row(w, i, 0, n, row.data());
      for (std::size_t s = 0; s < t; ++s) {
        const float* xs = x + s * ldx;
        float sum = 0.0f;
        for (std::size_t l = 0; l < n; ++l) sum += xs[l] * row[l];
        y[s * ldy + i] = sum;
      }
    }
  });
}

inline void weight_backward_dx_f32(const SignKernels& w, std::size_t m, std::size_t n,
                                   const float* z, std::size_t ldz, std::size_t t, float* dx,
                                   std::size_t lddx) {
  // Columns of dX in blocks of 64, so each thread owns the columns it adds to.
  parallel_for(
      0, n, 64,
      [&](std::size_t l0, std::size_t l1) {
        std::vector<float> row(l1 - l0);
        for (std::size_t i = 0; i < m; ++i) {
          weight_row(w, i, l0, l1, row.data());
          for (std::size_t s = 0; s < t; ++s) {
            const float zi = z[s * ldz + i];
            float* out = dx + s * lddx;
            for (std::size_t l = l0; l < l1; ++l) out[l] += zi * row[l - l0];
          }
        }
      },
      64);
}

inline void signal_rows(const SignKernels& w, const std::size_t* order, std::size_t count,
                        const float* p, std::size_t n, std::size_t r0, std::size_t r1,
                        float* const* ds_out, float* const* ds_in, float* const* q,
                        const bool* add_q) {
  for (std::size_t i = r0; i < r1; ++i) {
    const float* pi = p + i * n;
    for (std::size_t o = 0; o < count; ++o) {
      const std::size_t k = order[o];
      const std::uint64_t* bits = w.bits[k] + i * w.stride[k];
      const float* s_in = w.s_in[k];
      const float so = w.s_out[k][i];
      float* part = ds_in[k];
      // Eight partial sums so that the row's dot product vectorizes.
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      float tail = 0.0f;
      for (std::size_t j = 0; j < n; ++j) {
        // P_ij b_ij: the sign bit of P flipped where the weight is -1.
        std::uint32_t u;
        std::memcpy(&u, pi + j, sizeof u);
        u ^= static_cast<std::uint32_t>((bits[j / 64] >> (j % 64)) & 1u) << 31;
        float v;
        std::memcpy(&v, &u, sizeof v);
        if (j < n / 8 * 8)
          acc[j % 8] += v * s_in[j];
        else
          tail += v * s_in[j];
        part[j] += so * v;
      }
      ds_out[k][i] +=
          ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
      if (q[k] != nullptr) {
        float* qi = q[k] + i * n;
        if (add_q[k])
          for (std::size_t l = 0; l < n; ++l) qi[l] += pi[l] * so * s_in[l];
        else
          for (std::size_t l = 0; l < n; ++l) qi[l] = pi[l] * so * s_in[l];
      }
    }
  }
}

// The accumulator codecs of the optimizer's step: load a float, store one (f32 clamped to
// +-3e38, f16 saturating, i8 rounded stochastically by the element's counter draw).
template <StepCodec kCodec>
struct StepStorage;
template <>
struct StepStorage<StepCodec::f32> {
  float* p;
  explicit StepStorage(const BooleanStepArgs& a) : p(static_cast<float*>(a.acc)) {}
  float load(std::size_t e) const { return p[e]; }
  void store(std::size_t e, float v) const { p[e] = std::clamp(v, -3.0e38f, 3.0e38f); }
};
template <>
struct StepStorage<StepCodec::f16> {
  std::uint16_t* p;
  explicit StepStorage(const BooleanStepArgs& a) : p(static_cast<std::uint16_t*>(a.acc)) {}
  float load(std::size_t e) const { return f16_to_float(p[e]); }
  void store(std::size_t e, float v) const { p[e] = float_to_f16_saturating(v); }
};
template <>
struct StepStorage<StepCodec::i8> {
  std::int8_t* p;
  float scale, inv;
  std::uint64_t key;
  explicit StepStorage(const BooleanStepArgs& a)
      : p(static_cast<std::int8_t*>(a.acc)), scale(a.scale), inv(a.inv), key(a.key) {}
  float load(std::size_t e) const { return static_cast<float>(p[e]) * scale; }
  void store(std::size_t e, float v) const {
    const float x = std::floor(v * inv + counter_uniform(key, e));
    p[e] = static_cast<std::int8_t>(std::clamp(x, -127.0f, 127.0f));
  }
};

// m <- beta m + eta q; flip where |m| >= threshold and sign(m) agrees with the weight's bit
// (m < 0 on a -1 weight), then m <- 0. Rows [r0, r1); returns the flips.
template <StepCodec kCodec>
std::size_t boolean_step_rows(const BooleanStepArgs& a, std::size_t r0, std::size_t r1) {
  const StepStorage<kCodec> codec(a);
  std::size_t flips = 0;
  for (std::size_t i = r0; i < r1; ++i) {
    std::uint64_t* row = a.bits + i * a.stride;
    const float* qi = a.q + i * a.ld;
    const std::size_t base = i * a.cols;
    for (std::size_t w = 0; w * 64 < a.cols; ++w) {
      const std::uint64_t word = row[w];
      std::uint64_t flip = 0;
      const std::size_t end = std::min<std::size_t>(64, a.cols - w * 64);
      for (std::size_t b = 0; b < end; ++b) {
        const std::size_t j = w * 64 + b, e = base + j;
        const float g = a.sign_only ? static_cast<float>((qi[j] > 0) - (qi[j] < 0)) : qi[j];
        float m = a.beta * codec.load(e) + a.eta * g;
        const bool negative_w = (word >> b) & 1u;
        if (std::abs(m) >= a.threshold && (m < 0) == negative_w) {
          flip |= std::uint64_t{1} << b;
          m = 0.0f;
        }
        codec.store(e, m);
      }
      row[w] = word ^ flip;
      flips += static_cast<std::size_t>(popcount64(flip));
    }
  }
  return flips;
}

inline std::uint32_t max_abs_bits(const float* q, std::size_t ld, std::size_t rows,
                                  std::size_t cols) {
  std::uint32_t best = 0;
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j)
      best = std::max(best, float_bits(q[i * ld + j]) & 0x7FFFFFFFu);
  return best;
}

}  // namespace mbok::detail::scalar
