#pragma once
// The transformer's non-linear pieces with their backward passes: RMSNorm, GELU, causal
// multi-head attention. Row-major token x feature matrices; rows of one sequence are
// consecutive.

#include <cmath>
#include <vector>

#include "common.hpp"

namespace tiny {

/// RMSNorm with a learned gain: y = x / rms(x) (.) g.
template <typename T>
class RmsNorm {
 public:
  explicit RmsNorm(Index dim = 0) : gain(Vec<T>::Ones(dim)), grad(Vec<T>::Zero(dim)) {}

  void forward(const Mat<T>& x, Mat<T>& y, bool train) {
    Vec<T> r(x.rows());
    y.resize(x.rows(), x.cols());
    for (Index i = 0; i < x.rows(); ++i) {
      r(i) = T(1) / std::sqrt(x.row(i).squaredNorm() / T(x.cols()) + kEps);
      y.row(i) = (x.row(i).array() * r(i)) * gain.transpose().array();
    }
    if (train) {
      x_ = x;
      r_ = r;
    }
  }

  /// dx from dy; accumulates the gain gradient.
  void backward(const Mat<T>& dy, Mat<T>& dx) {
    dx.resize(dy.rows(), dy.cols());
    const T n = T(dy.cols());
    for (Index i = 0; i < dy.rows(); ++i) {
      const T r = r_(i);
      grad.array() += (dy.row(i).array() * x_.row(i).array() * r).transpose();
      const auto dxhat = (dy.row(i).array() * gain.transpose().array()).eval();
      const T dot = (dxhat * x_.row(i).array()).sum();
      dx.row(i) = r * (dxhat - x_.row(i).array() * (r * r * dot / n));
    }
  }

  Vec<T> gain;
  Vec<T> grad;

 private:
  static constexpr T kEps = T(1e-5);
  Mat<T> x_;
  Vec<T> r_;
};

/// GELU (tanh approximation) of a whole matrix, vectorized by Eigen; `t` receives the
/// tanh term that `gelu_backward` reuses.
template <typename T>
void gelu_forward(const Mat<T>& u, Mat<T>& g, Mat<T>& t) {
  constexpr T c = T(0.7978845608028654);
  t = (c * (u.array() + T(0.044715) * u.array().cube())).tanh();
  g = T(0.5) * u.array() * (T(1) + t.array());
}
/// du = dg (.) gelu'(u), with `t` from `gelu_forward`.
template <typename T>
void gelu_backward(const Mat<T>& u, const Mat<T>& t, const Mat<T>& dg, Mat<T>& du) {
  constexpr T c = T(0.7978845608028654);
  du = dg.array() *
       (T(0.5) * (T(1) + t.array()) + T(0.5) * u.array() * (T(1) - t.array().square()) * c *
                                          (T(1) + T(3 * 0.044715) * u.array().square()));
}

/// Causal multi-head self-attention core: given q, k, v (B*L x d), writes o (B*L x d) with
/// o_h = softmax(q_h k_h^T / sqrt(dh), causal) v_h per sequence and head.
template <typename T>
class CausalAttention {
 public:
  CausalAttention(Index heads = 1) : heads_(heads) {}

  void forward(const Mat<T>& q, const Mat<T>& k, const Mat<T>& v, Index seq_len, Mat<T>& o,
               bool train) {
    const Index rows = q.rows(), d = q.cols(), dh = d / heads_, seqs = rows / seq_len;
    const T scale = T(1) / std::sqrt(T(dh));
    o.resize(rows, d);
    if (train) {
      probs_.assign(static_cast<std::size_t>(seqs * heads_), Mat<T>());
      q_ = q;
      k_ = k;
      v_ = v;
      len_ = seq_len;
    }
#pragma omp parallel for schedule(static) if (seqs * heads_ > 1 && rows * d > 4096)
    for (Index sh = 0; sh < seqs * heads_; ++sh) {
      const Index s = sh / heads_, h = sh % heads_;
      const auto qb = q.block(s * seq_len, h * dh, seq_len, dh);
      const auto kb = k.block(s * seq_len, h * dh, seq_len, dh);
      const auto vb = v.block(s * seq_len, h * dh, seq_len, dh);
      Mat<T> p = (qb * kb.transpose()) * scale;
      for (Index i = 0; i < seq_len; ++i) {
        auto live = p.row(i).head(i + 1).array();
        live = (live - live.maxCoeff()).exp();
        live /= live.sum();
        p.row(i).tail(seq_len - i - 1).setZero();
      }
      o.block(s * seq_len, h * dh, seq_len, dh).noalias() = p * vb;
      if (train) probs_[static_cast<std::size_t>(sh)] = std::move(p);
    }
  }

  /// dq, dk, dv from do (all B*L x d).
  void backward(const Mat<T>& dout, Mat<T>& dq, Mat<T>& dk, Mat<T>& dv) const {
    const Index rows = q_.rows(), d = q_.cols(), dh = d / heads_, seqs = rows / len_, L = len_;
    const T scale = T(1) / std::sqrt(T(dh));
    dq.resize(rows, d);
    dk.resize(rows, d);
    dv.resize(rows, d);
#pragma omp parallel for schedule(static) if (seqs * heads_ > 1)
    for (Index sh = 0; sh < seqs * heads_; ++sh) {
      const Index s = sh / heads_, h = sh % heads_;
      const Mat<T>& p = probs_[static_cast<std::size_t>(sh)];
      const auto qb = q_.block(s * L, h * dh, L, dh);
      const auto kb = k_.block(s * L, h * dh, L, dh);
      const auto vb = v_.block(s * L, h * dh, L, dh);
      const auto db = dout.block(s * L, h * dh, L, dh);
      Mat<T> dp = db * vb.transpose();
      dv.block(s * L, h * dh, L, dh).noalias() = p.transpose() * db;
      for (Index i = 0; i < L; ++i) {
        const T dot = (dp.row(i).array() * p.row(i).array()).sum();
        dp.row(i) = (p.row(i).array() * (dp.row(i).array() - dot)).matrix();
      }
      dq.block(s * L, h * dh, L, dh).noalias() = (dp * kb) * scale;
      dk.block(s * L, h * dh, L, dh).noalias() = (dp.transpose() * qb) * scale;
    }
  }

  Index heads() const { return heads_; }

 private:
  Index heads_;
  Index len_ = 0;
  Mat<T> q_, k_, v_;
  std::vector<Mat<T>> probs_;
};

}  // namespace tiny
