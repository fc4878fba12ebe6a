#pragma once
// The linear-layer interface every attention projection and MLP matrix goes through, and its
// full-precision implementation. Y = X W^T with X (tokens x in), W (out x in).

#include <mbok/state_dict.hpp>

#include <random>
#include <string>

#include "common.hpp"

namespace tiny {

/// A linear map without bias that can run forward, backward and save its state.
template <typename T>
class Linear {
 public:
  virtual ~Linear() = default;
  virtual Index in_features() const = 0;
  virtual Index out_features() const = 0;
  /// y = x W^T. With `train`, keeps what `backward` needs.
  virtual void forward(const Mat<T>& x, Mat<T>& y, bool train) = 0;
  /// dx = dy W; accumulates the gradients of the trainable state (after a train forward).
  virtual void backward(const Mat<T>& dy, Mat<T>& dx) = 0;
  virtual void zero_grad() = 0;
  /// Appends the full-precision parameters (for AdamW), named `prefix` + part.
  virtual void parameters(Parameters<T>& out, const std::string& prefix) = 0;
  virtual void save(mbok::StateDict& dict, const std::string& prefix) const = 0;
  virtual void load(const mbok::StateDict& dict, const std::string& prefix) = 0;
  /// The dense weight this layer represents (out x in).
  virtual Mat<T> dense_weight() const = 0;
  /// Bits of storage per weight at inference (32 for float).
  virtual double bits_per_weight() const = 0;
};

/// Full-precision weight.
template <typename T>
class DenseLinear final : public Linear<T> {
 public:
  DenseLinear(Index in, Index out, std::mt19937_64& rng, T init_std)
      : w_(out, in), g_(Mat<T>::Zero(out, in)) {
    std::normal_distribution<double> dist(0.0, static_cast<double>(init_std));
    for (Index i = 0; i < w_.size(); ++i) w_.data()[i] = static_cast<T>(dist(rng));
  }
  explicit DenseLinear(Mat<T> w) : w_(std::move(w)), g_(Mat<T>::Zero(w_.rows(), w_.cols())) {}

  Index in_features() const override { return w_.cols(); }
  Index out_features() const override { return w_.rows(); }
  void forward(const Mat<T>& x, Mat<T>& y, bool train) override {
    y.noalias() = x * w_.transpose();
    if (train) x_ = x;
  }
  void backward(const Mat<T>& dy, Mat<T>& dx) override {
    g_.noalias() += dy.transpose() * x_;
    dx.noalias() = dy * w_;
  }
  void zero_grad() override { g_.setZero(); }
  void parameters(Parameters<T>& out, const std::string& prefix) override {
    out.push_back(mbok::make_parameter(prefix + "weight", w_, g_));
  }
  void save(mbok::StateDict& dict, const std::string& prefix) const override {
    dict[prefix + "weight"] = mbok::Tensor::from(w_.data(), {w_.rows(), w_.cols()});
  }
  void load(const mbok::StateDict& dict, const std::string& prefix) override {
    mbok::read_tensor(dict, prefix + "weight", {w_.rows(), w_.cols()}, w_.data());
  }
  Mat<T> dense_weight() const override { return w_; }
  double bits_per_weight() const override { return 8.0 * sizeof(T); }

  Mat<T>& weight() { return w_; }

 private:
  Mat<T> w_, g_, x_;
};

}  // namespace tiny
