#pragma once
/// \file
/// The non-linear pieces of a trainable LLaMA with their exact backward passes, on row-major
/// batches of `rows` sequences of `len` tokens (row r = sequence r / len, position r % len):
/// - RMSNorm  y = w (.) x r,  r = 1 / sqrt(mean(x^2) + eps)
///     dw += sum_rows dy (.) x r;  dx = r (g - x r^2 <g, x> / n),  g = dy (.) w
/// - RoPE (HF rotate-half) at each row's position; its backward is the inverse rotation;
/// - grouped-query causal softmax attention (optionally a sliding window), probabilities
///   kept for the backward: dP = dO V^T, dS = P (.) (dP - rowsum(dP (.) P)),
///   dQ = dS K / sqrt(d), dK = dS^T Q / sqrt(d), dV = P^T dO; units (sequence, kv head) run in
///   parallel (each writes its own rows of dK and dV);
/// - SwiGLU  a = silu(g) (.) u:  dg = da (.) u (.) s (1 + g (1 - s)),  du = da (.) silu(g).

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "../../parallel.hpp"
#include "../config.hpp"
#include "projection.hpp"

namespace mbok {
namespace llama {
namespace train {

/// RMSNorm forward: y = norm(x) (.) w; `rstd` (rows) receives r per row.
template <typename T>
void rms_norm_forward(const RowMatrixT<T>& x, const VectorT<T>& w, double eps, RowMatrixT<T>& y,
                      VectorT<T>& rstd) {
  const Eigen::Index n = x.cols();
  y.resize(x.rows(), n);
  rstd.resize(x.rows());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    double ss = 0;
    for (Eigen::Index j = 0; j < n; ++j) ss += double(x(i, j)) * double(x(i, j));
    const T r = static_cast<T>(1.0 / std::sqrt(ss / double(n) + eps));
    rstd(i) = r;
    y.row(i) = (x.row(i).array() * r) * w.transpose().array();
  }
}

/// RMSNorm backward: dx (overwritten) from dy; dw += the weight's gradient (when not null).
template <typename T>
void rms_norm_backward(const RowMatrixT<T>& x, const VectorT<T>& w, const VectorT<T>& rstd,
                       const RowMatrixT<T>& dy, RowMatrixT<T>& dx, VectorT<T>* dw) {
  const Eigen::Index n = x.cols();
  dx.resize(x.rows(), n);
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const T r = rstd(i);
    if (dw) dw->array() += (dy.row(i).array() * x.row(i).array() * r).transpose();
    const auto g = (dy.row(i).array() * w.transpose().array()).eval();
    const T dot = (g * x.row(i).array()).sum();
    dx.row(i) = r * (g - x.row(i).array() * (r * r * dot / T(n)));
  }
}

/// Cosines and sines of positions [0, len) (len x head_dim: cos in the first half, sin in
/// the second), from the model's inverse frequencies, in double rounded to T.
template <typename T>
RowMatrixT<T> rope_table(const LlamaConfig& config, std::size_t len) {
  const std::vector<double> inv = config.rope_inverse_frequencies();
  const std::size_t half = inv.size();
  RowMatrixT<T> cs(static_cast<Eigen::Index>(len), static_cast<Eigen::Index>(2 * half));
  for (std::size_t p = 0; p < len; ++p)
    for (std::size_t i = 0; i < half; ++i) {
      const double a = double(p) * inv[i];
      cs(Eigen::Index(p), Eigen::Index(i)) = static_cast<T>(std::cos(a));
      cs(Eigen::Index(p), Eigen::Index(half + i)) = static_cast<T>(std::sin(a));
    }
  return cs;
}

/// Rotates every head of every row of x (rows x heads * d) in place by its row's position
/// (row % len); `inverse` rotates back (the backward pass).
template <typename T>
void rope_apply(RowMatrixT<T>& x, std::size_t heads, std::size_t d, std::size_t len,
                const RowMatrixT<T>& cs, bool inverse) {
  const std::size_t half = d / 2;
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const std::size_t p = static_cast<std::size_t>(r) % len;
    const T* c = cs.row(Eigen::Index(p)).data();
    const T* s = c + half;
    T* row = x.row(r).data();
    for (std::size_t h = 0; h < heads; ++h) {
      T* x1 = row + h * d;
      T* x2 = x1 + half;
      for (std::size_t i = 0; i < half; ++i) {
        const T a = x1[i], b = x2[i];
        if (!inverse) {
          x1[i] = a * c[i] - b * s[i];
          x2[i] = b * c[i] + a * s[i];
        } else {
          x1[i] = a * c[i] + b * s[i];
          x2[i] = b * c[i] - a * s[i];
        }
      }
    }
  }
}

/// Shape of the attention of one batch.
struct TrainAttentionShape {
  std::size_t heads = 0, kv_heads = 0, head_dim = 0;
  std::size_t sliding_window = 0;  ///< 0: full causal attention
  std::size_t sequences = 0, len = 0;
};

/// Causal GQA attention with its tape (the probabilities of every sequence and head).
template <typename T>
class CausalAttention {
 public:
  using Matrix = RowMatrixT<T>;

  /// out (rows x heads * d) from q (rows x heads * d), k, v (rows x kv_heads * d), all rotated.
  /// With `train` the probabilities are kept (and q, k, v must stay alive and unchanged until
  /// `backward`).
  void forward(const TrainAttentionShape& s, const Matrix& q, const Matrix& k, const Matrix& v,
               Matrix& out, bool train) {
    shape_ = s;
    const std::size_t group = s.heads / s.kv_heads, d = s.head_dim, L = s.len;
    out.resize(q.rows(), q.cols());
    const std::size_t units = s.sequences * s.kv_heads;
    if (probs_.size() < s.sequences * s.heads) probs_.resize(s.sequences * s.heads);
    const T scale = static_cast<T>(1.0 / std::sqrt(double(d)));
    const std::size_t grain = mbok::detail::grain_for_cost(4 * group * d * L * L + 1);
    parallel_for(0, units, grain, [&](std::size_t u0, std::size_t u1) {
      Matrix local;
      for (std::size_t u = u0; u < u1; ++u) {
        const std::size_t b = u / s.kv_heads, g = u % s.kv_heads;
        const auto r0 = static_cast<Eigen::Index>(b * L), Li = static_cast<Eigen::Index>(L),
                   di = static_cast<Eigen::Index>(d);
        const auto kb = k.block(r0, Eigen::Index(g * d), Li, di);
        const auto vb = v.block(r0, Eigen::Index(g * d), Li, di);
        for (std::size_t j = 0; j < group; ++j) {
          const std::size_t h = g * group + j;
          Matrix& p = train ? probs_[b * s.heads + h] : local;
          p.resize(Li, Li);
          p.noalias() = q.block(r0, Eigen::Index(h * d), Li, di) * kb.transpose();
          for (Eigen::Index i = 0; i < Li; ++i) {
            const Eigen::Index lo = lowest(i);
            auto live = p.row(i).segment(lo, i + 1 - lo).array();
            live *= scale;
            live = (live - live.maxCoeff()).exp();
            live /= live.sum();
            if (lo > 0) p.row(i).head(lo).setZero();
            p.row(i).tail(Li - i - 1).setZero();
          }
          out.block(r0, Eigen::Index(h * d), Li, di).noalias() = p * vb;
        }
      }
    });
  }

  /// dq (rows x heads * d), dk, dv (rows x kv_heads * d), overwritten, from dout.
  void backward(const Matrix& q, const Matrix& k, const Matrix& v, const Matrix& dout, Matrix& dq,
                Matrix& dk, Matrix& dv) const {
    const TrainAttentionShape& s = shape_;
    const std::size_t group = s.heads / s.kv_heads, d = s.head_dim, L = s.len;
    dq.resize(q.rows(), q.cols());
    dk.resize(k.rows(), k.cols());
    dv.resize(v.rows(), v.cols());
    const T scale = static_cast<T>(1.0 / std::sqrt(double(d)));
    const std::size_t units = s.sequences * s.kv_heads;
    const std::size_t grain = mbok::detail::grain_for_cost(8 * group * d * L * L + 1);
    parallel_for(0, units, grain, [&](std::size_t u0, std::size_t u1) {
      Matrix dp;
      for (std::size_t u = u0; u < u1; ++u) {
        const std::size_t b = u / s.kv_heads, g = u % s.kv_heads;
        const auto r0 = static_cast<Eigen::Index>(b * L), Li = static_cast<Eigen::Index>(L),
                   di = static_cast<Eigen::Index>(d);
        const auto kb = k.block(r0, Eigen::Index(g * d), Li, di);
        const auto vb = v.block(r0, Eigen::Index(g * d), Li, di);
        auto dkb = dk.block(r0, Eigen::Index(g * d), Li, di);
        auto dvb = dv.block(r0, Eigen::Index(g * d), Li, di);
        dkb.setZero();
        dvb.setZero();
        for (std::size_t j = 0; j < group; ++j) {
          const std::size_t h = g * group + j;
          const Matrix& p = probs_[b * s.heads + h];
          const auto db = dout.block(r0, Eigen::Index(h * d), Li, di);
          dvb.noalias() += p.transpose() * db;
          dp.resize(Li, Li);
          dp.noalias() = db * vb.transpose();
          for (Eigen::Index i = 0; i < Li; ++i) {
            const T dot = (dp.row(i).array() * p.row(i).array()).sum();
            dp.row(i) = (p.row(i).array() * (dp.row(i).array() - dot)).matrix() * scale;
          }
          dq.block(r0, Eigen::Index(h * d), Li, di).noalias() = dp * kb;
          dkb.noalias() += dp.transpose() * q.block(r0, Eigen::Index(h * d), Li, di);
        }
      }
    });
  }

 private:
  Eigen::Index lowest(Eigen::Index i) const {
    const auto w = static_cast<Eigen::Index>(shape_.sliding_window);
    return w > 0 && i + 1 > w ? i + 1 - w : 0;
  }

  TrainAttentionShape shape_;
  std::vector<Matrix> probs_;
};

/// SwiGLU forward: a = silu(gate) (.) up.
template <typename T>
void swiglu_forward(const RowMatrixT<T>& gate, const RowMatrixT<T>& up, RowMatrixT<T>& a) {
  a.resize(gate.rows(), gate.cols());
  a = (gate.array() / (T(1) + (-gate.array()).exp())) * up.array();
}

/// SwiGLU backward: dgate, dup (overwritten) from da.
template <typename T>
void swiglu_backward(const RowMatrixT<T>& gate, const RowMatrixT<T>& up, const RowMatrixT<T>& da,
                     RowMatrixT<T>& dgate, RowMatrixT<T>& dup) {
  dgate.resize(gate.rows(), gate.cols());
  dup.resize(gate.rows(), gate.cols());
  const auto sig = (T(1) / (T(1) + (-gate.array()).exp())).eval();
  dup = da.array() * gate.array() * sig;
  dgate = da.array() * up.array() * sig * (T(1) + gate.array() * (T(1) - sig));
}

}  // namespace train
}  // namespace llama
}  // namespace mbok
