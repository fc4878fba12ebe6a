#pragma once
// A byte-level decoder-only transformer: token and learned position embeddings, pre-norm
// blocks (RMSNorm, causal multi-head attention, GELU MLP), final RMSNorm, output head.
// Every attention projection and MLP matrix is a `Linear` that can be swapped for a
// Boolean one; embeddings, norms and head stay full precision.

#include <mbok/error.hpp>
#include <mbok/state_dict.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common.hpp"
#include "linear.hpp"
#include "model_config.hpp"
#include "ops.hpp"

namespace tiny {

/// Names of the six linear layers of a block, in the order `for_each_linear` visits them.
inline const std::vector<std::string>& linear_names() {
  static const std::vector<std::string> names = {"attn.q", "attn.k",  "attn.v",
                                                 "attn.o", "mlp.fc1", "mlp.fc2"};
  return names;
}

template <typename T>
class Block {
 public:
  Block(const ModelConfig& c, std::mt19937_64& rng)
      : ln1(c.d_model), ln2(c.d_model), attn(c.heads) {
    const Index d = c.d_model, f = c.d_model * c.mlp_mult;
    const T std_in = T(0.02), std_out = T(0.02 / std::sqrt(2.0 * double(c.layers)));
    lin[0] = std::make_unique<DenseLinear<T>>(d, d, rng, std_in);
    lin[1] = std::make_unique<DenseLinear<T>>(d, d, rng, std_in);
    lin[2] = std::make_unique<DenseLinear<T>>(d, d, rng, std_in);
    lin[3] = std::make_unique<DenseLinear<T>>(d, d, rng, std_out);
    lin[4] = std::make_unique<DenseLinear<T>>(d, f, rng, std_in);
    lin[5] = std::make_unique<DenseLinear<T>>(f, d, rng, std_out);
  }

  void forward(const Mat<T>& x, Index seq_len, Mat<T>& out, bool train) {
    ln1.forward(x, a_, train);
    lin[0]->forward(a_, q_, train);
    lin[1]->forward(a_, k_, train);
    lin[2]->forward(a_, v_, train);
    attn.forward(q_, k_, v_, seq_len, ctx_, train);
    lin[3]->forward(ctx_, o_, train);
    h2_ = x + o_;
    ln2.forward(h2_, b_, train);
    lin[4]->forward(b_, u_, train);
    gelu_forward(u_, g_, t_);
    lin[5]->forward(g_, m_, train);
    out = h2_ + m_;
  }

  void backward(const Mat<T>& dout, Mat<T>& dx) {
    Mat<T> dg, du, db, dh2, dctx, dq, dk, dv, da, tmp;
    lin[5]->backward(dout, dg);
    gelu_backward(u_, t_, dg, du);
    lin[4]->backward(du, db);
    ln2.backward(db, dh2);
    dh2 += dout;
    lin[3]->backward(dh2, dctx);
    attn.backward(dctx, dq, dk, dv);
    lin[0]->backward(dq, da);
    lin[1]->backward(dk, tmp);
    da += tmp;
    lin[2]->backward(dv, tmp);
    da += tmp;
    ln1.backward(da, dx);
    dx += dh2;
  }

  RmsNorm<T> ln1, ln2;
  CausalAttention<T> attn;
  std::unique_ptr<Linear<T>> lin[6];

 private:
  Mat<T> a_, q_, k_, v_, ctx_, o_, h2_, b_, u_, g_, t_, m_;
};

/// Key/value caches for incremental decoding (one token at a time).
template <typename T>
struct DecodeState {
  std::vector<Mat<T>> keys, values;  // per layer: context x d
  Index length = 0;
};

template <typename T>
class Transformer {
 public:
  explicit Transformer(const ModelConfig& c, std::uint64_t seed = 1) : cfg_(c) {
    c.validate();
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> dist(0.0, 0.02);
    tok_emb_.resize(kVocab, c.d_model);
    pos_emb_.resize(c.context, c.d_model);
    for (Index i = 0; i < tok_emb_.size(); ++i) tok_emb_.data()[i] = T(dist(rng));
    for (Index i = 0; i < pos_emb_.size(); ++i) pos_emb_.data()[i] = T(dist(rng));
    tok_grad_ = Mat<T>::Zero(kVocab, c.d_model);
    pos_grad_ = Mat<T>::Zero(c.context, c.d_model);
    for (Index l = 0; l < c.layers; ++l) blocks_.push_back(std::make_unique<Block<T>>(c, rng));
    final_norm_ = RmsNorm<T>(c.d_model);
    head_ = std::make_unique<DenseLinear<T>>(c.d_model, kVocab, rng, T(0.02));
  }

  const ModelConfig& config() const { return cfg_; }

  /// Logits (rows*len x 256) for the batch's inputs. Block outputs are kept in `hidden()`.
  void forward(const Batch& batch, Mat<T>& logits, bool train) {
    if (batch.len > cfg_.context)
      throw mbok::InvalidArgument("forward: sequence of " + std::to_string(batch.len) +
                                  " tokens exceeds the context of " + std::to_string(cfg_.context));
    const Index n = batch.rows * batch.len;
    Mat<T> x(n, cfg_.d_model);
    for (Index i = 0; i < n; ++i)
      x.row(i) = tok_emb_.row(batch.inputs[std::size_t(i)]) + pos_emb_.row(i % batch.len);
    hidden_.resize(blocks_.size());
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      blocks_[l]->forward(l == 0 ? x : hidden_[l - 1], batch.len, hidden_[l], train);
    }
    final_norm_.forward(hidden_.back(), normed_, train);
    head_->forward(normed_, logits, train);
    if (train) last_batch_ = batch;
  }

  /// Output of block l from the last forward (rows*len x d).
  const Mat<T>& hidden(std::size_t l) const { return hidden_.at(l); }
  std::size_t num_blocks() const { return blocks_.size(); }

  /// Back-propagates dlogits (and, when given, extra gradients on each block's output) after
  /// a train forward; accumulates into every gradient.
  void backward(const Mat<T>& dlogits, const std::vector<Mat<T>>* dhidden = nullptr) {
    Mat<T> dnormed, dx, dprev;
    head_->backward(dlogits, dnormed);
    final_norm_.backward(dnormed, dx);
    for (std::size_t l = blocks_.size(); l-- > 0;) {
      if (dhidden && (*dhidden)[l].size() > 0) dx += (*dhidden)[l];
      blocks_[l]->backward(dx, dprev);
      dx.swap(dprev);
    }
    const Batch& b = last_batch_;
    for (Index i = 0; i < b.rows * b.len; ++i) {
      tok_grad_.row(b.inputs[std::size_t(i)]) += dx.row(i);
      pos_grad_.row(i % b.len) += dx.row(i);
    }
  }

  void zero_grad() {
    tok_grad_.setZero();
    pos_grad_.setZero();
    final_norm_.grad.setZero();
    head_->zero_grad();
    for (auto& b : blocks_) {
      b->ln1.grad.setZero();
      b->ln2.grad.setZero();
      for (auto& l : b->lin) l->zero_grad();
    }
  }

  /// Every full-precision parameter (norm gains and Linear scales do not decay).
  Parameters<T> parameters() {
    Parameters<T> p;
    p.push_back(mbok::make_parameter("tok_emb", tok_emb_, tok_grad_));
    p.push_back(mbok::make_parameter("pos_emb", pos_emb_, pos_grad_));
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      const std::string pre = "blocks." + std::to_string(l) + ".";
      auto& b = *blocks_[l];
      p.push_back(mbok::make_parameter(pre + "ln1", b.ln1.gain, b.ln1.grad, false));
      p.push_back(mbok::make_parameter(pre + "ln2", b.ln2.gain, b.ln2.grad, false));
      for (std::size_t j = 0; j < 6; ++j) b.lin[j]->parameters(p, pre + linear_names()[j] + ".");
    }
    p.push_back(mbok::make_parameter("final_norm", final_norm_.gain, final_norm_.grad, false));
    head_->parameters(p, "head.");
    return p;
  }

  /// Calls fn(name, layer) for every replaceable linear layer ("blocks.<l>.attn.q", ...).
  void for_each_linear(
      const std::function<void(const std::string&, std::unique_ptr<Linear<T>>&)>& fn) {
    for (std::size_t l = 0; l < blocks_.size(); ++l)
      for (std::size_t j = 0; j < 6; ++j)
        fn("blocks." + std::to_string(l) + "." + linear_names()[j], blocks_[l]->lin[j]);
  }

  /// The whole model as named tensors.
  mbok::StateDict state() const {
    mbok::StateDict d;
    d["tok_emb"] = mbok::Tensor::from(tok_emb_.data(), {tok_emb_.rows(), tok_emb_.cols()});
    d["pos_emb"] = mbok::Tensor::from(pos_emb_.data(), {pos_emb_.rows(), pos_emb_.cols()});
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      const std::string pre = "blocks." + std::to_string(l) + ".";
      const auto& b = *blocks_[l];
      d[pre + "ln1"] = mbok::Tensor::from(b.ln1.gain.data(), {b.ln1.gain.size()});
      d[pre + "ln2"] = mbok::Tensor::from(b.ln2.gain.data(), {b.ln2.gain.size()});
      for (std::size_t j = 0; j < 6; ++j) b.lin[j]->save(d, pre + linear_names()[j] + ".");
    }
    d["final_norm"] = mbok::Tensor::from(final_norm_.gain.data(), {final_norm_.gain.size()});
    head_->save(d, "head.");
    return d;
  }

  /// Loads named tensors saved by `state()` of a model with the same configuration and the
  /// same kinds of layers; throws `FormatError` naming a missing or misshapen tensor.
  void load_state(const mbok::StateDict& d) {
    mbok::read_tensor(d, "tok_emb", {tok_emb_.rows(), tok_emb_.cols()}, tok_emb_.data());
    mbok::read_tensor(d, "pos_emb", {pos_emb_.rows(), pos_emb_.cols()}, pos_emb_.data());
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      const std::string pre = "blocks." + std::to_string(l) + ".";
      auto& b = *blocks_[l];
      mbok::read_tensor(d, pre + "ln1", {b.ln1.gain.size()}, b.ln1.gain.data());
      mbok::read_tensor(d, pre + "ln2", {b.ln2.gain.size()}, b.ln2.gain.data());
      for (std::size_t j = 0; j < 6; ++j) b.lin[j]->load(d, pre + linear_names()[j] + ".");
    }
    mbok::read_tensor(d, "final_norm", {final_norm_.gain.size()}, final_norm_.gain.data());
    head_->load(d, "head.");
  }

  /// Starts incremental decoding.
  DecodeState<T> start_decoding() const {
    DecodeState<T> s;
    s.keys.assign(blocks_.size(), Mat<T>(cfg_.context, cfg_.d_model));
    s.values.assign(blocks_.size(), Mat<T>(cfg_.context, cfg_.d_model));
    return s;
  }

  /// Feeds one token at position s.length (< context) and writes the next-token logits.
  /// Reuses the model's decode buffers (no allocation per token once they are sized) and adds
  /// the time spent in the block linear layers and in the head to `linear_seconds()` and
  /// `head_seconds()`.
  void decode_step(DecodeState<T>& s, std::uint8_t token, Vec<T>& logits) {
    if (s.length >= cfg_.context)
      throw mbok::InvalidArgument("decode_step: context of " + std::to_string(cfg_.context) +
                                  " is full");
    const Index pos = s.length, d = cfg_.d_model, heads = cfg_.heads, dh = d / heads;
    const T scale = T(1) / std::sqrt(T(dh));
    DecodeBuffers& z = dec_;
    z.x = tok_emb_.row(token) + pos_emb_.row(pos);
    z.ctx.resize(1, d);
    auto linear = [&](Linear<T>& l, const Mat<T>& in, Mat<T>& out) {
      const auto t0 = std::chrono::steady_clock::now();
      l.forward(in, out, false);
      linear_seconds_ += elapsed(t0);
    };
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      auto& blk = *blocks_[l];
      blk.ln1.forward(z.x, z.a, false);
      linear(*blk.lin[0], z.a, z.q);
      linear(*blk.lin[1], z.a, z.k);
      linear(*blk.lin[2], z.a, z.v);
      s.keys[l].row(pos) = z.k.row(0);
      s.values[l].row(pos) = z.v.row(0);
      for (Index h = 0; h < heads; ++h) {
        z.sc.noalias() = s.keys[l].block(0, h * dh, pos + 1, dh) * q_head(z, h, dh).transpose();
        z.sc *= scale;
        z.sc = (z.sc.array() - z.sc.maxCoeff()).exp();
        z.sc /= z.sc.sum();
        z.ctx.block(0, h * dh, 1, dh).noalias() =
            z.sc.transpose() * s.values[l].block(0, h * dh, pos + 1, dh);
      }
      linear(*blk.lin[3], z.ctx, z.o);
      z.x += z.o;
      blk.ln2.forward(z.x, z.b, false);
      linear(*blk.lin[4], z.b, z.u);
      gelu_forward(z.u, z.g, z.t);
      linear(*blk.lin[5], z.g, z.m);
      z.x += z.m;
    }
    final_norm_.forward(z.x, z.normed, false);
    const auto t0 = std::chrono::steady_clock::now();
    head_->forward(z.normed, z.out, false);
    head_seconds_ += elapsed(t0);
    logits = z.out.row(0).transpose();
    ++s.length;
  }

  /// Seconds spent in the block linear layers (q, k, v, o, up, down) and in the output head
  /// by `decode_step` since the last `reset_decode_timers()`.
  double linear_seconds() const { return linear_seconds_; }
  double head_seconds() const { return head_seconds_; }
  void reset_decode_timers() { linear_seconds_ = head_seconds_ = 0; }

 private:
  ModelConfig cfg_;
  Mat<T> tok_emb_, pos_emb_, tok_grad_, pos_grad_;
  std::vector<std::unique_ptr<Block<T>>> blocks_;
  RmsNorm<T> final_norm_;
  std::unique_ptr<DenseLinear<T>> head_;
  std::vector<Mat<T>> hidden_;
  Mat<T> normed_;
  Batch last_batch_;

  // Buffers of `decode_step`, kept between tokens.
  struct DecodeBuffers {
    Mat<T> x, a, q, k, v, ctx, o, b, u, g, t, m, normed, out;
    Vec<T> sc;
  };
  static auto q_head(const DecodeBuffers& z, Index h, Index dh) {
    return z.q.block(0, h * dh, 1, dh);
  }
  static double elapsed(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  DecodeBuffers dec_;
  double linear_seconds_ = 0, head_seconds_ = 0;
};

}  // namespace tiny
